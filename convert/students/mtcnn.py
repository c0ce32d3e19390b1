"""MobileNet-style MTCNN students: the teacher's P/R/O-Net topology with every convolution after
the first replaced by a depthwise-separable block (3x3 depthwise + 1x1 pointwise).

Only P-Net's cost grows with the image (it runs over the whole pyramid), so P-Net is where the
speed is won (see build_pnet_student: ~4.6x fewer multiply-adds per pixel, fused activations). R-Net and O-Net
see a handful of candidates per frame, so they keep the teacher's widths for accuracy.

Inputs (12 / 24 / 48 px, normalised (x - 127.5) / 128), windows, strides and outputs (box
regression 4, landmarks 10, face/non-face softmax 2) are the teacher's, so the edge cascade runs
either set of files unchanged. The first layer stays a plain 3x3 conv: with 3 input channels a
depthwise split saves nothing and costs accuracy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import keras

L = keras.layers


@dataclass(frozen=True)
class DetectorStudentConfig:
    """Channel widths per net (the teacher's are P 10/16/32, R 28/48/64/128, O 32/64/64/128/256)."""

    pnet: tuple[int, ...] = (10, 16, 32)
    rnet: tuple[int, ...] = (28, 48, 64, 128)
    onet: tuple[int, ...] = (32, 64, 64, 128, 256)

    def __post_init__(self) -> None:
        for net, count in (("pnet", 3), ("rnet", 4), ("onet", 5)):
            widths = getattr(self, net)
            if len(widths) != count or any(int(w) < 1 for w in widths):
                raise ValueError(f"{net} widths must be {count} positive channel counts, got {list(widths)}")

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


def build_student_nets(config: DetectorStudentConfig | None = None) -> dict[str, keras.Model]:
    cfg = config or DetectorStudentConfig()
    return {"pnet": build_pnet_student(cfg.pnet), "rnet": build_rnet_student(cfg.rnet),
            "onet": build_onet_student(cfg.onet)}
