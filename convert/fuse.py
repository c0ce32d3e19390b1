"""Fold a linear convolution into the 1x1 convolution that alone reads it: the same function with
one layer and one activation tensor less.

Why: the pretrained MobileFaceNet the embedder student starts from ends its stem with a separable
conv whose 1x1 pointwise part (64 -> 64, no activation) feeds straight into the first bottleneck's
1x1 expansion (64 -> 128) at 56x56 — two matrix products in a row, 12.8 M multiply-adds and a full
56x56x64 tensor pass the board pays on every face for nothing. Composing them is exact algebra:

    W2 (W1 * x + b1) + b2 = (W1 W2) * x + (b1 W2 + b2)

for a first Conv2D of any kernel, stride and padding (zero padding is applied to x, before W1) with
no activation, followed by a 1x1, stride-1 Conv2D that is its only reader. A pair is folded only when
the fused kernel costs fewer multiply-adds per output pixel than the two layers did, so nothing here
makes a model slower. Export applies it before int8 calibration (convert/export/model.py), so every
format gets the leaner graph and one quantisation point less; the parity check against the unfused
Keras source still guards the result.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np

from facegate.convert.prune import consumers_map

log = logging.getLogger(__name__)
L = keras.layers


@dataclass(frozen=True)
class FusablePair:
    first: str     # Conv2D, any kernel, no activation
    second: str    # 1x1 stride-1 Conv2D, the first's only reader

    def describe(self) -> str:
        return f"{self.first} -> {self.second}"


def _is_plain_conv(layer) -> bool:
    return (type(layer) is L.Conv2D and layer.groups == 1 and layer.data_format == "channels_last"
            and tuple(layer.dilation_rate) == (1, 1))


def _macs_per_pixel(first, second) -> tuple[int, int]:
    """(separate, fused) multiply-adds per output pixel of the pair."""
    kh, kw, cin, mid = first.kernel.shape
    out = second.kernel.shape[-1]
    return kh * kw * cin * mid + mid * out, kh * kw * cin * out


def find_fusable(model: keras.Model) -> list[FusablePair]:
    """The pairs one pass of `fuse_linear_convs` folds: exact, cheaper, and disjoint (in a chain
    A -> B -> C only A -> B is taken; the next pass sees the folded B -> C)."""
    consumers = consumers_map(model)
    pairs: list[FusablePair] = []
    taken: set[str] = set()
    for layer in model.layers:
        if layer.name in taken or not _is_plain_conv(layer) or layer.get_config()["activation"] != "linear":
            continue
        readers = consumers.get(layer.name, [])
        if len(readers) != 1 or readers[0] == "__output__":
            continue
        nxt = model.get_layer(readers[0])
        if not _is_plain_conv(nxt) or tuple(nxt.kernel_size) != (1, 1) or tuple(nxt.strides) != (1, 1):
            continue
        separate, fused = _macs_per_pixel(layer, nxt)
        if fused < separate:
            pairs.append(FusablePair(layer.name, nxt.name))
            taken |= {layer.name, nxt.name}
    return pairs


def _fused_weights(first, second) -> list[np.ndarray]:
    w1 = first.get_weights()
    w2 = second.get_weights()
    k1 = w1[0].astype(np.float64)
    k2 = w2[0][0, 0].astype(np.float64)                          # (mid, out)
    kernel = np.einsum("hwcm,mo->hwco", k1, k2)
    bias = w2[1].astype(np.float64) if second.use_bias else np.zeros(k2.shape[1])
    if first.use_bias:
        bias = bias + w1[1].astype(np.float64) @ k2
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def fuse_linear_convs(model: keras.Model, custom_objects: dict | None = None) -> tuple[keras.Model, dict]:
    """A new model in which every foldable pair is one convolution (repeated until nothing folds);
    the input model is not changed. Returns (model, summary); with nothing to fold the same model
    comes back."""
    summary: dict = {"fused_pairs": 0}
    while pairs := find_fusable(model):
        model, macs_saved = _fold(model, pairs, custom_objects)
        summary["fused_pairs"] += len(pairs)
        summary.setdefault("pairs", []).extend(p.describe() for p in pairs)
        summary["macs_saved_per_image"] = summary.get("macs_saved_per_image", 0) + macs_saved
    if summary["fused_pairs"]:
        log.info("folded %d linear conv pair(s) (%s): %.1f M multiply-adds less per image", summary["fused_pairs"],
                 ", ".join(summary["pairs"]), summary["macs_saved_per_image"] / 1e6)
    return model, summary


def _fold(model: keras.Model, pairs: list[FusablePair], custom_objects: dict | None) -> tuple[keras.Model, int]:
    """One pass: rebuild the model from its config with each pair's first layer removed and its second
    layer reading the first's input with the first's kernel, stride and padding."""
    by_second = {p.second: p for p in pairs}
    removed = {p.first for p in pairs}
    cfg = model.get_config()
    layers_cfg = {layer["name"]: layer for layer in cfg["layers"]}
    for pair in pairs:
        first_cfg, second_cfg = layers_cfg[pair.first], layers_cfg[pair.second]
        second_cfg["inbound_nodes"] = first_cfg["inbound_nodes"]      # read what the first layer read
        for key in ("kernel_size", "strides", "padding"):
            second_cfg["config"][key] = first_cfg["config"][key]
        second_cfg["config"]["use_bias"] = True
        second_cfg.pop("build_config", None)
    cfg["layers"] = [layer for layer in cfg["layers"] if layer["name"] not in removed]
    fused = keras.Model.from_config(cfg, custom_objects=custom_objects)
    macs_saved = 0
    for layer in fused.layers:
        if not layer.weights:
            continue
        if layer.name in by_second:
            pair = by_second[layer.name]
            first, second = model.get_layer(pair.first), model.get_layer(pair.second)
            layer.set_weights(_fused_weights(first, second))
            separate, joint = _macs_per_pixel(first, second)
            h, w = second.output.shape[1:3]
            macs_saved += (separate - joint) * int(h) * int(w)
        else:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return fused, macs_saved
