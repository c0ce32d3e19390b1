"""MiniFASNetV2 and MiniFASNetV1SE (Silent-Face-Anti-Spoofing, Apache-2.0) as Keras models, with their
PyTorch weights loaded from the state dicts (convert/pad/state_dict.py, no torch needed).

Written from the published architecture: a MobileFaceNet-like trunk of depthwise-separable blocks
(V1SE adds squeeze-and-excitation to the last block of each residual stage), a 5x5 depthwise "global"
conv for 80x80 inputs, a 128-D linear + BN bottleneck and a 3-class head (index 1 = live, 0 and 2 =
the two attack classes they trained with). Input: 80x80 **BGR**, float 0-255, no normalisation (as
trained). Every layer is named after its PyTorch module path, which is how the weights find it.
Torch pads 3x3 convs symmetrically, so each padded conv is an explicit ZeroPadding2D + 'valid' conv.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facegate.convert.pad.state_dict import load_state_dict
from facegate.edge.errors import ModelError

#: channel plan of each variant (the nets' own "keep" lists: width after every conv)
KEEP = {
    "V2": [32, 32, 103, 103, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 231, 231, 128, 231, 231, 128, 52,
           52, 128, 26, 26, 128, 77, 77, 128, 26, 26, 128, 26, 26, 128, 308, 308, 128, 26, 26, 128, 26, 26, 128,
           512, 512],
    "V1SE": [32, 32, 103, 103, 64, 13, 13, 64, 26, 26, 64, 13, 13, 64, 52, 52, 64, 231, 231, 128, 154, 154, 128,
             52, 52, 128, 26, 26, 128, 52, 52, 128, 26, 26, 128, 26, 26, 128, 308, 308, 128, 26, 26, 128, 26, 26,
             128, 512, 512],
}
#: the shipped weights: variant, crop scale around the face box, file, sha256 (../shared/pretrained/minifasnet)
PRETRAINED = {
    "minifasnet-v2": ("V2", 2.7, "2.7_80x80_MiniFASNetV2.pth",
                      "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0"),
    "minifasnet-v1se": ("V1SE", 4.0, "4_0_0_80x80_MiniFASNetV1SE.pth",
                        "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990"),
}
INPUT_SIZE = 80
LIVE_CLASS = 1
BN_EPS = 1e-5


#: activations a net can be built with: the published PReLU, or ReLU (fused into each convolution by
#: TFLite: LiteRT has no int8 PReLU kernel on its fast path, so an int8 PReLU net keeps PReLU float and
#: pays a dequantise / PReLU / quantise pass per activation, ~30% of its time at 80x80)
ACTIVATIONS = ("prelu", "relu")


def build(variant: str, input_size: int = INPUT_SIZE, dropout: float = 0.2, activation: str = "prelu"):
    """The Keras model (BGR 0-255 in, 3 softmax probabilities out)."""
    import keras
    from keras import layers
    if variant not in KEEP:
        raise ModelError(f"unknown MiniFASNet variant {variant!r}; known: {', '.join(KEEP)}")
    if activation not in ACTIVATIONS:
        raise ModelError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    keep, se = KEEP[variant], variant.endswith("SE")

    def conv(x, out, kernel, stride, pad, depthwise, name, act=True):
        if pad:
            x = layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, use_bias=False, name=f"{name}.conv")(x)
        else:
            x = layers.Conv2D(out, kernel, stride, use_bias=False, name=f"{name}.conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}.bn")(x)
        if not act:
            return x
        if activation == "relu":
            return layers.ReLU(name=f"{name}.relu")(x)
        return layers.PReLU(shared_axes=[1, 2], name=f"{name}.prelu")(x)

    def squeeze_excite(x, channels, name):
        s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.avg_pool")(x)
        s = layers.Conv2D(channels // 4, 1, use_bias=False, name=f"{name}.fc1")(s)
        s = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}.bn1")(s)
        s = layers.ReLU(name=f"{name}.relu")(s)
        s = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}.fc2")(s)
        s = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}.bn2")(s)
        s = layers.Activation("sigmoid", name=f"{name}.sigmoid")(s)
        return layers.Multiply(name=f"{name}.scale")([x, s])

    def depth_wise(x, i, stride, residual, name, with_se=False):
        """Expand 1x1 (keep[i] -> keep[i+1]), depthwise 3x3, project 1x1 (-> keep[i+3])."""
        y = conv(x, keep[i + 1], 1, 1, 0, False, f"{name}.conv")
        y = conv(y, keep[i + 2], 3, stride, 1, True, f"{name}.conv_dw")
        y = conv(y, keep[i + 3], 1, 1, 0, False, f"{name}.project", act=False)
        if residual:
            if with_se:
                y = squeeze_excite(y, keep[i + 3], f"{name}.se_module")
            y = layers.Add(name=f"{name}.add")([x, y])
        return y

    def stage(x, first, blocks, name):
        for b in range(blocks):
            x = depth_wise(x, first + 3 * b, 1, True, f"{name}.model.{b}", with_se=se and b == blocks - 1)
        return x

    inp = keras.Input((input_size, input_size, 3), name="bgr")
    x = conv(inp, keep[0], 3, 2, 1, False, "conv1")
    x = conv(x, keep[1], 3, 1, 1, True, "conv2_dw")
    x = depth_wise(x, 1, 2, False, "conv_23")
    x = stage(x, 4, 4, "conv_3")
    x = depth_wise(x, 16, 2, False, "conv_34")
    x = stage(x, 19, 6, "conv_4")
    x = depth_wise(x, 37, 2, False, "conv_45")
    x = stage(x, 40, 2, "conv_5")
    x = conv(x, keep[47], 1, 1, 0, False, "conv_6_sep")
    kernel = (input_size + 15) // 16
    x = conv(x, keep[48], kernel, 1, 0, True, "conv_6_dw", act=False)
    x = layers.Flatten(name="conv_6_flatten")(x)
    x = layers.Dense(128, use_bias=False, name="linear")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name="bn")(x)
    x = layers.Dropout(dropout, name="drop")(x)
    x = layers.Dense(3, use_bias=False, name="prob")(x)
    out = layers.Softmax(name="softmax")(x)
    suffix = "" if activation == "prelu" else f"-{activation}"
    return keras.Model(inp, out, name=f"minifasnet-{variant.lower()}{suffix}")


def load_torch_weights(model, state: dict[str, np.ndarray]) -> int:
    """Copy a state dict into `build()`'s model; returns how many tensors were used (all of them, or
    ModelError naming what is missing or left over)."""
    from keras import layers
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise ModelError(f"the state dict has no {key}: not a MiniFASNet of this variant")
        used.add(key)
        return state[key]

    for layer in model.layers:
        n = layer.name
        if isinstance(layer, layers.DepthwiseConv2D):
            w = take(f"{n}.weight")                                   # (C, 1, kh, kw)
            layer.set_weights([w.transpose(2, 3, 0, 1)])              # (kh, kw, C, 1)
        elif isinstance(layer, layers.Conv2D):
            layer.set_weights([take(f"{n}.weight").transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            layer.set_weights([take(f"{n}.weight"), take(f"{n}.bias"), take(f"{n}.running_mean"),
                               take(f"{n}.running_var")])
            used.add(f"{n}.num_batches_tracked")
        elif isinstance(layer, layers.PReLU):
            layer.set_weights([take(f"{n}.weight").reshape(1, 1, -1)])
        elif isinstance(layer, layers.Dense):
            layer.set_weights([take(f"{n}.weight").T])
    left = set(state) - used
    if left:
        raise ModelError(f"{len(left)} weights of the state dict have no layer here (e.g. {sorted(left)[0]})")
    return len(used)


def with_relu(model, variant: str):
    """The same net with every PReLU replaced by ReLU, every other weight copied: a starting point for
    fine-tuning a net whose int8 file runs entirely on LiteRT's fast path (the published slopes are
    small, layer means -0.03..0.14, but vary per channel: the net must be fine-tuned after this)."""
    relu = build(variant, model.input_shape[1], activation="relu")
    for layer in relu.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return relu


def pretrained(name: str, weights_dir: str | Path):
    """(Keras model with the Apache-2.0 weights, crop scale); the file's sha256 is checked first."""
    from facegate.edge.downloads import sha256_of
    variant, scale, filename, digest = PRETRAINED[name]
    path = Path(weights_dir) / filename
    if not path.is_file():
        raise ModelError(f"{path} not found: the MiniFASNet weights live in ../shared/pretrained/minifasnet")
    if sha256_of(path) != digest:
        raise ModelError(f"{path} does not have the published sha256 {digest[:16]}...")
    model = build(variant)
    load_torch_weights(model, load_state_dict(path))
    return model, scale
