"""MobileNet-style MTCNN students: the teacher's P/R/O-Net topology with every convolution after
the first replaced by a depthwise-separable block (3x3 depthwise + 1x1 pointwise).

Only P-Net's cost grows with the image (it runs over the whole pyramid), so P-Net is where the
speed is won (see build_pnet_student: ~4.6x fewer multiply-adds per pixel, fused activations). R-Net and O-Net
see a handful of candidates per frame, so they keep the teacher's widths for accuracy.

With a depth multiplier m > 0 for a net (`DetectorStudentConfig.multiplier`) that net is instead the
teacher's own layout with each convolution after the first split into a k x k depthwise conv with m
filters per channel (linear) and a 1x1 pointwise conv, initialised from the teacher's weights by
`factorize.transfer` / `refit` (build_factorised): it starts near the teacher rather than from noise.

Inputs (12 / 24 / 48 px, normalised (x - 127.5) / 128), windows, strides and outputs (box
regression 4, landmarks 10, face/non-face softmax 2) are the teacher's, so the edge cascade runs
either set of files unchanged. The first layer stays a plain 3x3 conv: with 3 input channels a
depthwise split saves nothing and costs accuracy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import keras

from facegate.convert.teachers.mtcnn import conv_prelu

L = keras.layers


TEACHER_WIDTHS = {"pnet": (10, 16, 32), "rnet": (28, 48, 64, 128), "onet": (32, 64, 64, 128, 256)}


@dataclass(frozen=True)
class DetectorStudentConfig:
    """Channel widths per net (the teacher's are P 10/16/32, R 28/48/64/128, O 32/64/64/128/256)."""

    pnet: tuple[int, ...] = (10, 16, 32)
    rnet: tuple[int, ...] = (28, 48, 64, 128)
    onet: tuple[int, ...] = (32, 64, 64, 128, 256)
    # depthwise filters per channel of a net factorised from the teacher (P, R, O); 0 = designed layout
    multiplier: tuple[int, int, int] = (0, 0, 0)

    def __post_init__(self) -> None:
        for net, count in (("pnet", 3), ("rnet", 4), ("onet", 5)):
            widths = getattr(self, net)
            if len(widths) != count or any(int(w) < 1 for w in widths):
                raise ValueError(f"{net} widths must be {count} positive channel counts, got {list(widths)}")
        if len(self.multiplier) != 3 or any(int(m) < 0 for m in self.multiplier):
            raise ValueError(f"multiplier must be 3 counts >= 0 (P, R, O-Net), got {list(self.multiplier)}")
        for net, m in zip(("pnet", "rnet", "onet"), self.multiplier):
            if m and tuple(getattr(self, net)) != TEACHER_WIDTHS[net]:
                raise ValueError(f"{net} is factorised from the teacher (multiplier {m}), so its widths are the "
                                 f"teacher's {list(TEACHER_WIDTHS[net])}, not {list(getattr(self, net))}")

    def factorised(self, net: str) -> int:
        return int(self.multiplier[("pnet", "rnet", "onet").index(net)])

    def to_dict(self) -> dict:
        return asdict(self)


def _conv(x, filters: int, kernel: int, name: str):
    x = L.Conv2D(filters, kernel, padding="valid", name=f"{name}_conv")(x)
    return L.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def _separable(x, filters: int, kernel: int, name: str):
    """Depthwise k x k (valid, like the teacher's conv) + PReLU + pointwise 1x1 + PReLU."""
    x = L.DepthwiseConv2D(kernel, padding="valid", name=f"{name}_dw")(x)
    x = L.PReLU(shared_axes=[1, 2], name=f"{name}_dw_prelu")(x)
    x = L.Conv2D(filters, 1, name=f"{name}_pw")(x)
    return L.PReLU(shared_axes=[1, 2], name=f"{name}_pw_prelu")(x)


def build_pnet_student(widths: tuple[int, ...] = (10, 16, 32)) -> keras.Model:
    """P-Net runs over the whole image pyramid, so it is built for speed: the teacher's full-resolution
    3x3 conv + 2x2 max-pool becomes one 4x4 stride-2 conv (same 12 px window, same stride 2, a quarter
    of the first layer's work and no full-resolution feature map), and ReLU replaces PReLU so every
    activation is fused into its convolution by TFLite/ONNX Runtime (PReLU is a separate pass over
    memory — most of a tiny net's time)."""
    inp = keras.Input((None, None, 3), name="image")
    x = L.Conv2D(widths[0], 4, strides=2, padding="valid", activation="relu", name="c1_conv")(inp)
    for i, w in enumerate(widths[1:], start=2):
        x = L.DepthwiseConv2D(3, padding="valid", activation="relu", name=f"s{i}_dw")(x)
        x = L.Conv2D(w, 1, activation="relu", name=f"s{i}_pw")(x)
    box = L.Conv2D(4, 1, name="box")(x)
    prob = L.Conv2D(2, 1, activation="softmax", name="prob")(x)
    return keras.Model(inp, [box, prob], name="pnet_student")


def build_rnet_student(widths: tuple[int, ...] = (28, 48, 64, 128)) -> keras.Model:
    inp = keras.Input((24, 24, 3), name="image")
    x = _conv(inp, widths[0], 3, "c1")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _separable(x, widths[1], 3, "s2")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = _separable(x, widths[2], 2, "s3")
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(widths[3], name="fc")(x)
    x = L.PReLU(name="fc_prelu")(x)
    box = L.Dense(4, name="box")(x)
    prob = L.Dense(2, activation="softmax", name="prob")(x)
    return keras.Model(inp, [box, prob], name="rnet_student")


def build_onet_student(widths: tuple[int, ...] = (32, 64, 64, 128, 256)) -> keras.Model:
    inp = keras.Input((48, 48, 3), name="image")
    x = _conv(inp, widths[0], 3, "c1")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _separable(x, widths[1], 3, "s2")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = _separable(x, widths[2], 3, "s3")
    x = L.MaxPooling2D(2, 2, padding="same", name="pool3")(x)
    x = _separable(x, widths[3], 2, "s4")
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(widths[4], name="fc")(x)
    x = L.PReLU(name="fc_prelu")(x)
    box = L.Dense(4, name="box")(x)
    landmarks = L.Dense(10, name="landmarks")(x)
    prob = L.Dense(2, activation="softmax", name="prob")(x)
    return keras.Model(inp, [box, landmarks, prob], name="onet_student")


def _factorised_conv(x, filters: int, kernel: int, multiplier: int, suffix: str):
    """The teacher's conv `conv<suffix>` as depthwise (m filters per channel, linear, no bias) + pointwise
    + PReLU. m is capped at the kernel's taps (4 for 2x2): there the split is already exact."""
    x = L.DepthwiseConv2D(kernel, depth_multiplier=min(multiplier, kernel * kernel), use_bias=False,
                          name=f"conv{suffix}_dw")(x)
    x = L.Conv2D(filters, 1, name=f"conv{suffix}_pw")(x)
    return L.PReLU(shared_axes=[1, 2], name=f"prelu{suffix}")(x)


def build_factorised(net: str, multiplier: int) -> keras.Model:
    """The teacher net's layout (layer names included, so `factorize.transfer` can pair them) with every
    conv after the first depthwise-separable; no Permute: the first dense layer's rows are reordered."""
    if net == "pnet":
        inp = keras.Input((None, None, 3), name="image")
        x = conv_prelu(inp, 10, 3, "1")
        x = L.MaxPooling2D(2, 2, padding="same", name="pool1")(x)
        x = _factorised_conv(x, 16, 3, multiplier, "2")
        x = _factorised_conv(x, 32, 3, multiplier, "3")
        return keras.Model(inp, [L.Conv2D(4, 1, name="box")(x), L.Conv2D(2, 1, activation="softmax", name="prob")(x)],
                           name="pnet_student")
    size = {"rnet": 24, "onet": 48}[net]
    inp = keras.Input((size, size, 3), name="image")
    x = conv_prelu(inp, 28 if net == "rnet" else 32, 3, "1")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _factorised_conv(x, 48 if net == "rnet" else 64, 3, multiplier, "2")
    x = L.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    if net == "rnet":
        x = _factorised_conv(x, 64, 2, multiplier, "3")
        fc, width = "4", 128
    else:
        x = _factorised_conv(x, 64, 3, multiplier, "3")
        x = L.MaxPooling2D(2, 2, padding="same", name="pool3")(x)
        x = _factorised_conv(x, 128, 2, multiplier, "4")
        fc, width = "5", 256
    x = L.Flatten(name="flatten")(x)
    x = L.PReLU(name=f"prelu{fc}")(L.Dense(width, name=f"fc{fc}")(x))
    heads = [L.Dense(4, name="box")(x)]
    if net == "onet":
        heads.append(L.Dense(10, name="landmarks")(x))
    heads.append(L.Dense(2, activation="softmax", name="prob")(x))
    return keras.Model(inp, heads, name=f"{net}_student")


def build_student_nets(config: DetectorStudentConfig | None = None) -> dict[str, keras.Model]:
    cfg = config or DetectorStudentConfig()
    designed = {"pnet": lambda: build_pnet_student(cfg.pnet), "rnet": lambda: build_rnet_student(cfg.rnet),
                "onet": lambda: build_onet_student(cfg.onet)}
    return {net: build_factorised(net, cfg.factorised(net)) if cfg.factorised(net) else make()
            for net, make in designed.items()}
