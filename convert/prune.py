"""Pruning that pays: structured channel pruning (a slimmer graph, really smaller and faster) and
unstructured magnitude pruning (sparse weights, smaller once compressed), each followed by a short
fine-tune by distillation from the unpruned model.

Why not tensorflow-model-optimization: tfmot 0.8.1 accepts only tf_keras (Keras 2) models, flips
the whole process to legacy Keras when imported, and never prunes DepthwiseConv2D — the layer the
mobile students are made of. Masks and graph surgery in Keras 3 are a few dozen lines and work on
every model facegate builds.

Structured pruning looks for chains
`Conv2D -> [BatchNorm | Activation | PReLU | Dropout | DepthwiseConv2D]* -> Conv2D` where each link
has a single consumer and the first conv's output reaches nothing else (not a concatenation, a
residual sum or a model output). Filters of the first conv are ranked by their L1 norm times the
following batch-norm scale; the weakest are removed from the producer, the layers in
between and the input channels of the consumer, and the model is rebuilt from its config.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import keras
import numpy as np

log = logging.getLogger(__name__)
L = keras.layers
#: layers that act on each channel separately: a pruned channel can be cut out of them. Depthwise
#: convolutions count, so a MobileNet bottleneck's expansion (1x1 expand -> depthwise -> 1x1 project)
#: is one chain and its inner width can shrink without touching the block's residual interface.
PASS_THROUGH = (L.BatchNormalization, L.Activation, L.ReLU, L.PReLU, L.Dropout, L.DepthwiseConv2D)


@dataclass
class Chain:
    producer: str
    between: list[str]
    consumer: str


@dataclass
class PruneReport:
    method: str
    ratio: float
    params_before: int
    params_after: int
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # layer -> (before, after) filters/nonzeros

    def to_dict(self) -> dict:
        return {"method": self.method, "ratio": self.ratio, "params_before": self.params_before,
                "params_after": self.params_after, "pruned_layers": len(self.layers)}


def _histories(obj) -> list[str]:
    """Layer names referenced by a serialised inbound node (Keras 3 config format)."""
    found = []
    if isinstance(obj, dict):
        if "keras_history" in obj.get("config", {}):
            found.append(obj["config"]["keras_history"][0])
        for v in obj.values():
            found += _histories(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            found += _histories(v)
    return found


def consumers_map(model: keras.Model) -> dict[str, list[str]]:
    cfg = model.get_config()
    out: dict[str, list[str]] = {layer["name"]: [] for layer in cfg["layers"]}
    for layer in cfg["layers"]:
        for src in _histories(layer.get("inbound_nodes", [])):
            out.setdefault(src, []).append(layer["name"])
    outputs = cfg["output_layers"]
    if outputs and not isinstance(outputs[0], (list, tuple)):  # a single output is stored flat
        outputs = [outputs]
    for o in outputs:
        out.setdefault(o[0], []).append("__output__")
    return out


def find_chains(model: keras.Model, pattern: str | None = None) -> list[Chain]:
    consumers = consumers_map(model)
    by_name = {layer.name: layer for layer in model.layers}
    chains = []
    for layer in model.layers:
        if type(layer) is not L.Conv2D or layer.groups != 1:
            continue
        if pattern and not re.search(pattern, layer.name):
            continue
        between, cur = [], layer.name
        while True:
            nxt = consumers.get(cur, [])
            if len(nxt) != 1 or nxt[0] == "__output__":
                break
            nl = by_name[nxt[0]]
            if isinstance(nl, PASS_THROUGH):
                between.append(nl.name)
                cur = nl.name
                continue
            if type(nl) is L.Conv2D and nl.groups == 1:
                chains.append(Chain(layer.name, between, nl.name))
            break
    return chains


def _filter_importance(model: keras.Model, chain: Chain) -> np.ndarray:
    kernel = model.get_layer(chain.producer).get_weights()[0]
    score = np.abs(kernel).sum(axis=(0, 1, 2))
    for name in chain.between:
        layer = model.get_layer(name)
        if isinstance(layer, L.BatchNormalization):
            w = {v.path.split("/")[-1]: v.numpy() for v in layer.weights}
            gamma = w.get("gamma", np.ones_like(w["moving_variance"]))
            score = score * np.abs(gamma) / np.sqrt(w["moving_variance"] + layer.epsilon)
    return score


def _chain_statistics(model: keras.Model, chains: list[Chain], data: np.ndarray,
                      batch_size: int = 16) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel mean and std of the tensor each chain feeds its consumer, on real inputs."""
    tails = [ch.between[-1] if ch.between else ch.producer for ch in chains]
    probe = keras.Model(model.inputs, [model.get_layer(t).output for t in tails])
    sums = [0.0] * len(chains)
    sq = [0.0] * len(chains)
    counts = [0] * len(chains)  # per chain: each reads a different spatial resolution
    for start in range(0, len(data), batch_size):
        outs = probe([data[start:start + batch_size]], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, o in enumerate(outs):
            o = np.asarray(o, np.float64).reshape(-1, o.shape[-1])
            sums[i] = sums[i] + o.sum(0)
            sq[i] = sq[i] + (o ** 2).sum(0)
            counts[i] += o.shape[0]
    stats = {}
    for ch, s1, s2, n in zip(chains, sums, sq, counts):
        mean = s1 / n
        stats[ch.producer] = (mean, np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0)))
    return stats


def _following_batchnorm(model: keras.Model, consumers: dict[str, list[str]], name: str) -> str | None:
    nxt = consumers.get(name, [])
    if len(nxt) == 1 and nxt[0] != "__output__" and isinstance(model.get_layer(nxt[0]), L.BatchNormalization):
        return nxt[0]
    return None


def _slice_between(layer, weights: list[np.ndarray], keep: np.ndarray) -> list[np.ndarray]:
    if isinstance(layer, L.BatchNormalization):
        return [w[keep] for w in weights]
    if isinstance(layer, L.PReLU):
        return [w[..., keep] for w in weights]
    if isinstance(layer, L.DepthwiseConv2D):   # kernel (h, w, channels, multiplier), bias (channels * multiplier)
        if layer.depth_multiplier != 1:
            raise ValueError(f"{layer.name}: depthwise pruning needs depth multiplier 1")
        return [weights[0][:, :, keep, :]] + [w[keep] for w in weights[1:]]
    return weights


def prune_channels(model: keras.Model, ratio: float, pattern: str | None = None,
                   custom_objects: dict | None = None, data: np.ndarray | None = None) -> tuple[keras.Model, PruneReport]:
    """A new, slimmer model with `ratio` of the filters removed from every prunable chain.

    With `data` (normalised model inputs, a few dozen real faces is enough) the pruning is
    data-aware: a channel's importance is the spread of its activation times the norm of the
    consumer weights reading it, and the removed channels' mean contribution is folded into the
    consumer's bias (or the batch-norm right after it). Without that compensation, removing even
    weak channels shifts every consumer output by a constant (post-BN/ReLU channels are rarely
    zero) and a deep net like FaceNet collapses. Without `data`: L1 norm x batch-norm scale.
    """
    if not 0 < ratio < 1:
        raise ValueError(f"pruning ratio must be in (0, 1), got {ratio}")
    chains = find_chains(model, pattern)
    if not chains:
        raise ValueError("no prunable Conv2D -> Conv2D chains in this model")
    stats = _chain_statistics(model, chains, data) if data is not None else {}
    keeps: dict[str, np.ndarray] = {}
    for ch in chains:
        if ch.producer in stats:
            w_cons = model.get_layer(ch.consumer).get_weights()[0]
            imp = stats[ch.producer][1] * np.sqrt((w_cons ** 2).sum(axis=(0, 1, 3)))
        else:
            imp = _filter_importance(model, ch)
        n_keep = max(1, int(round(len(imp) * (1 - ratio))))
        keeps[ch.producer] = np.sort(np.argsort(-imp)[:n_keep])
    consumers = consumers_map(model)
    cfg = model.get_config()
    touched = {n for ch in chains for n in (ch.producer, *ch.between, ch.consumer)}
    for layer in cfg["layers"]:
        if layer["name"] in keeps:
            layer["config"]["filters"] = int(len(keeps[layer["name"]]))
        if layer["name"] in touched:
            layer.pop("build_config", None)  # recorded input shapes are stale: rebuild from the graph
    slim = keras.Model.from_config(cfg, custom_objects=custom_objects)
    between_keep = {b: keeps[ch.producer] for ch in chains for b in ch.between}
    consumer_keep = {ch.consumer: keeps[ch.producer] for ch in chains}
    # constant each consumer output loses when the pruned channels go: sum_k,c W[k, c, o] * mean_c
    shift: dict[str, np.ndarray] = {}
    for ch in chains:
        if ch.producer not in stats:
            continue
        dropped = np.setdiff1d(np.arange(len(stats[ch.producer][0])), keeps[ch.producer])
        w_cons = model.get_layer(ch.consumer).get_weights()[0]
        delta = np.einsum("hwco,c->o", w_cons[:, :, dropped, :], stats[ch.producer][0][dropped])
        # a consumer that is itself a pruned producer keeps only some outputs
        shift[ch.consumer] = delta[keeps[ch.consumer]] if ch.consumer in keeps else delta
    compensate_bn: dict[str, np.ndarray] = {}
    report = PruneReport("structured", ratio, model.count_params(), 0)
    for name, delta in shift.items():
        layer = model.get_layer(name)
        if not layer.use_bias:
            bn = _following_batchnorm(model, consumers, name)
            if bn is not None:
                compensate_bn[bn] = delta
            else:
                log.warning("%s: no bias or batch norm to absorb the pruned channels' mean", name)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        name = layer.name
        if name in keeps:
            k = keeps[name]
            weights = [weights[0][..., k]] + ([weights[1][k]] if len(weights) > 1 else [])
            report.layers[name] = (layer.filters, len(k))
        if name in between_keep:
            weights = _slice_between(layer, weights, between_keep[name])
        if name in consumer_keep:
            weights = [weights[0][:, :, consumer_keep[name], :]] + weights[1:]
            if name in shift and layer.use_bias:
                weights[1] = weights[1] + shift[name]
        if name in compensate_bn:
            names = [v.path.split("/")[-1] for v in layer.weights]
            weights[names.index("moving_mean")] = weights[names.index("moving_mean")] - compensate_bn[name]
        slim.get_layer(name).set_weights(weights)
    report.params_after = slim.count_params()
    log.info("structured pruning: %d chains, %d -> %d parameters", len(chains), report.params_before,
             report.params_after)
    return slim, report


MASKABLE = (L.Conv2D, L.DepthwiseConv2D, L.Dense)


def magnitude_masks(model: keras.Model, sparsity: float, pattern: str | None = None) -> dict[str, np.ndarray]:
    """Per-layer masks zeroing the smallest-magnitude `sparsity` of each kernel (depthwise included)."""
    if not 0 < sparsity < 1:
        raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
    masks = {}
    for layer in model.layers:
        if not isinstance(layer, MASKABLE) or (pattern and not re.search(pattern, layer.name)):
            continue
        kernel = layer.get_weights()[0]
        cut = np.quantile(np.abs(kernel), sparsity)
        masks[layer.name] = (np.abs(kernel) > cut).astype(np.float32)
    return masks


def apply_masks(model: keras.Model, masks: dict[str, np.ndarray]) -> None:
    for name, mask in masks.items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        weights[0] = weights[0] * mask
        layer.set_weights(weights)


def prune_magnitude(model: keras.Model, sparsity: float, pattern: str | None = None,
                    custom_objects: dict | None = None) -> tuple[keras.Model, PruneReport, dict]:
    clone = keras.Model.from_config(model.get_config(), custom_objects=custom_objects)
    clone.set_weights(model.get_weights())
    masks = magnitude_masks(clone, sparsity, pattern)
    apply_masks(clone, masks)
    nonzero = int(sum(np.count_nonzero(w) for w in clone.get_weights()))
    report = PruneReport("magnitude", sparsity, model.count_params(), nonzero,
                         {n: (m.size, int(m.sum())) for n, m in masks.items()})
    return clone, report, masks


class _MaskCallback(keras.callbacks.Callback):
    def __init__(self, masks: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.masks = masks

    def on_train_batch_end(self, batch, logs=None):
        apply_masks(self.model, self.masks)


def distill_finetune(student: keras.Model, targets: np.ndarray, inputs: np.ndarray, steps: int = 100,
                     batch_size: int = 16, learning_rate: float = 1e-4, masks: dict | None = None,
                     seed: int = 0) -> list[float]:
    """Fine-tune `student` so its embeddings of `inputs` (already normalised) match the unit-length
    `targets` of the unpruned model: cosine loss, horizontal flips, batch norm frozen (small batches
    would wreck its statistics). Returns the loss per epoch."""
    for layer in student.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.trainable = False
    rng = np.random.default_rng(seed)
    flip = rng.random(len(inputs)) < 0.5
    x = np.where(flip[:, None, None, None], inputs[:, :, ::-1, :], inputs).astype(np.float32)
    student.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=keras.losses.CosineSimilarity())
    per_epoch = max(1, int(np.ceil(len(x) / batch_size)))
    epochs = max(1, int(np.ceil(steps / per_epoch)))
    callbacks = [_MaskCallback(masks)] if masks else []
    hist = student.fit(x, targets.astype(np.float32), batch_size=batch_size, epochs=epochs, shuffle=True,
                       verbose=0, callbacks=callbacks)
    return [float(v) for v in hist.history["loss"]]
