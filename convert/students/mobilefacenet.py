"""A MobileFaceNet-style embedder (Chen et al. 2018): depthwise-separable inverted-residual
bottlenecks, PReLU, and a global depthwise conv (GDConv) head instead of global average pooling, so
the spatial position of features (eyes vs. chin) survives into the embedding.

`width` scales every channel count and `depth` scales the repeats of each bottleneck stage, so the
size/speed/accuracy trade-off is chosen by measurement rather than hard-coded. Input: 112x112 RGB
normalised with (x - 127.5) / 128, aligned with the ArcFace 5-point template; output: the raw
128-D embedding (the runtime L2-normalises).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
from keras import layers

#: (expansion t, output channels c, repeats n, first stride s) of the paper's bottleneck stages
STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))
INPUT_SIZE = 112


@dataclass(frozen=True)
class StudentConfig:
    """Shape of the student; stored in its card so the exact network can be rebuilt."""

    width: float = 1.0
    depth: float = 1.0
    embedding_dim: int = 128
    head_channels: int = 512
    #: "prelu" (the paper's choice) or "relu": TFLite's int8 XNNPACK kernels fuse ReLU into the
    #: convolutions but have no int8 PReLU, so a ReLU student is the fast one in int8.
    activation: str = "prelu"

    def __post_init__(self) -> None:
        if self.activation not in ("prelu", "relu"):
            raise ValueError(f"student activation must be 'prelu' or 'relu', not {self.activation!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> keras.Model:
        return build_student(self)


def _ch(c: int, width: float) -> int:
    """Channels scaled by the width multiplier, kept to multiples of 8 (fast on every CPU kernel)."""
    return max(8, int(round(c * width / 8)) * 8)


def _activation(x, kind: str | None, name: str):
    if kind is None:
        return x
    if kind == "relu":
        return layers.ReLU(name=f"{name}_relu")(x)
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, act: str | None = "prelu"):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return _activation(x, act, name)


def _dw_bn(x, kernel: int, stride: int, name: str, act: str | None = "prelu", padding: str = "same"):
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return _activation(x, act, name)


def _bottleneck(x, expansion: int, out: int, stride: int, name: str, act: str):
    inp = x.shape[-1]
    y = _conv_bn(x, inp * expansion, 1, 1, f"{name}_expand", act)
    y = _dw_bn(y, 3, stride, f"{name}_depthwise", act)
    y = _conv_bn(y, out, 1, 1, f"{name}_project", act=None)
    if stride == 1 and inp == out:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def build_student(config: StudentConfig | None = None, name: str = "mobilefacenet") -> keras.Model:
    """The student as a Keras functional model, (N, 112, 112, 3) float -> (N, embedding_dim)."""
    cfg = config or StudentConfig()
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    act = cfg.activation
    x = _conv_bn(inputs, _ch(64, cfg.width), 3, 2, "stem", act)
    x = _dw_bn(x, 3, 1, "stem_dw", act)
    for s, (t, c, n, stride) in enumerate(STAGES):
        repeats = max(1, math.ceil(n * cfg.depth))
        for r in range(repeats):
            x = _bottleneck(x, t, _ch(c, cfg.width), stride if r == 0 else 1, f"stage{s}_block{r}", act)
    x = _conv_bn(x, _ch(cfg.head_channels, cfg.width), 1, 1, "head", act)
    x = _dw_bn(x, int(x.shape[1]), 1, "gdconv", act=None, padding="valid")   # global depthwise conv
    x = layers.Conv2D(cfg.embedding_dim, 1, use_bias=False, name="embedding_conv")(x)
    # unit-ish output norm from the first step (gamma = 1/sqrt(D)), like the teacher's targets
    x = layers.BatchNormalization(epsilon=1e-3, gamma_initializer=keras.initializers.Constant(cfg.embedding_dim ** -0.5),
                                  name="embedding_bn")(x)
    x = layers.Flatten(name="embedding")(x)
    return keras.Model(inputs, x, name=name)
