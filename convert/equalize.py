"""Cross-layer channel equalisation before int8 quantisation (Nagel et al. 2019, data-aware).

Full-integer TFLite quantises each activation tensor with one scale. In a network whose batch
norm was folded away (the pretrained MobileFaceNet peer), a few channels of a tensor span 10-20x
the range of the others, so the quiet channels keep only a handful of int8 levels; the global
depthwise conv then sums 49 such coarse values with weights of both signs, and the int8 student's
embedding fell to cosine 0.92 against its float self (docs/benchmarks.md).

For a chain A -> [PReLU] -> B of linear layers (Conv2D / DepthwiseConv2D, A with a bias) in which
nothing else reads A's or the PReLU's output, dividing A's output channel c by s_c (weights and
bias) and multiplying B's input channel c by s_c leaves the network's function unchanged: PReLU
commutes with a positive scale. `equalize` picks s_c from the activation ranges measured on
calibration faces: for a depthwise B (per-channel weight scales, so scaling costs it nothing) every
channel is brought to the tensor's largest range; for a dense B the activation range and B's
input-channel weight range are balanced (s = sqrt(r_act / r_weight)), as in data-free quantisation.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Chain:
    first: str            # A: Conv2D / DepthwiseConv2D with bias
    activation: str | None  # PReLU between them, or None
    second: str           # B: Conv2D / DepthwiseConv2D reading only that tensor


def find_chains(model) -> list[Chain]:
    """Every A -> [PReLU] -> B chain that can be rescaled without changing the function."""
    from keras import layers

    from facegate.convert.prune import consumers_map

    consumers = consumers_map(model)       # a model output counts as a consumer ("__output__")
    linear = (layers.Conv2D, layers.DepthwiseConv2D)

    def only_consumer(name: str):
        users = consumers.get(name, [])
        if len(users) != 1 or users[0] == "__output__":
            return None
        return model.get_layer(users[0])

    chains = []
    for layer in model.layers:
        if not isinstance(layer, linear) or not layer.use_bias:
            continue
        nxt = only_consumer(layer.name)
        act = None
        if isinstance(nxt, layers.PReLU):
            alpha = nxt.get_weights()[0]
            if alpha.size != layer.get_weights()[1].size:     # one slope per channel, shared over space
                continue
            act, nxt = nxt, only_consumer(nxt.name)
        if isinstance(nxt, linear) and not (isinstance(nxt, layers.Conv2D) and nxt.groups != 1):
            chains.append(Chain(layer.name, act.name if act else None, nxt.name))
    return chains


def channel_ranges(model, chains: list[Chain], batches) -> dict[str, np.ndarray]:
    """max |activation| per channel of each chain's middle tensor over the calibration batches."""
    import keras
    names = [c.activation or c.first for c in chains]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    ranges = {n: None for n in names}
    for x in batches:
        outs = probe(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs):
            r = np.abs(np.asarray(o)).reshape(-1, np.asarray(o).shape[-1]).max(axis=0)
            ranges[n] = r if ranges[n] is None else np.maximum(ranges[n], r)
    return ranges


def _input_channel_range(layer) -> np.ndarray:
    kernel = layer.get_weights()[0]
    return np.abs(kernel).max(axis=(0, 1, 3))     # Conv2D (h, w, in, out); DepthwiseConv2D (h, w, C, 1)


def equalize(model, batches, max_scale: float = 1e3) -> dict:
    """Rescale every equalisable chain of `model` in place; return a summary for the card.

    `batches`: an iterable of float input batches (calibration faces, normalised as the model
    expects). The function of the model is unchanged up to float rounding."""
    from keras import layers

    chains = find_chains(model)
    if not chains:
        return {"chains": 0}
    ranges = channel_ranges(model, chains, batches)
    spread_before, spread_after = [], []
    for chain in chains:
        a, b = model.get_layer(chain.first), model.get_layer(chain.second)
        r_act = ranges[chain.activation or chain.first].astype(np.float64)
        live = r_act > 0
        if not live.any():
            continue
        if isinstance(b, layers.DepthwiseConv2D):
            s = r_act / r_act[live].max()
        else:
            r_w = _input_channel_range(b).astype(np.float64)
            s = np.sqrt(r_act / np.maximum(r_w, 1e-12))
            s /= np.exp(np.mean(np.log(s[live])))       # keep the tensor's overall scale
        s = np.where(live, np.clip(s, 1 / max_scale, max_scale), 1.0)
        spread_before.append(float(r_act[live].max() / np.median(r_act[live])))
        after = r_act / s
        spread_after.append(float(after[live].max() / np.median(after[live])))
        kernel, bias = a.get_weights()
        if isinstance(a, layers.DepthwiseConv2D):
            kernel = kernel / s.reshape(1, 1, -1, 1)
        else:
            kernel = kernel / s.reshape(1, 1, 1, -1)
        a.set_weights([kernel.astype(np.float32), (bias / s).astype(np.float32)])
        weights = b.get_weights()
        weights[0] = (weights[0] * s.reshape(1, 1, -1, 1)).astype(np.float32)
        b.set_weights(weights)
    summary = {"chains": len(chains),
               "range_spread_median_before": round(float(np.median(spread_before)), 2),
               "range_spread_median_after": round(float(np.median(spread_after)), 2)}
    log.info("channel equalisation: %s", summary)
    return summary
