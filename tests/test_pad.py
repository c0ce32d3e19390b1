"""Presentation attack detection, conversion side: the PyTorch state dicts are read without torch, the
Keras MiniFASNets reproduce PyTorch's own forward pass, and nothing but a state dict is unpickled."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from facegate.convert.pad.state_dict import load_state_dict
from facegate.edge.errors import ModelError

SHARED = Path(os.environ.get("FACEGATE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
WEIGHTS = SHARED / "pretrained" / "minifasnet"


@pytest.fixture(scope="module")
def weights_dir():
    if not (WEIGHTS / "2.7_80x80_MiniFASNetV2.pth").is_file():
        pytest.skip(f"MiniFASNet weights not found under {WEIGHTS}")
    return WEIGHTS


def test_legacy_state_dicts_read_without_torch(weights_dir):
    v2 = load_state_dict(weights_dir / "2.7_80x80_MiniFASNetV2.pth")
    se = load_state_dict(weights_dir / "4_0_0_80x80_MiniFASNetV1SE.pth")
    assert len(v2) == 334 and len(se) == 370
    assert v2["conv1.conv.weight"].shape == (32, 3, 3, 3) and v2["prob.weight"].shape == (3, 128)
    assert v2["conv1.conv.weight"].dtype == np.float32 and np.isfinite(v2["conv1.bn.running_var"]).all()
    assert se["conv_3.model.3.se_module.fc1.weight"].shape[:2] == (16, 64)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(obj, fh, protocol=2)
        pickle.dump({"w": Evil()}, fh, protocol=2)
    with pytest.raises(ModelError, match="refusing to unpickle"):
        load_state_dict(path)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "junk.pth").write_bytes(b"not a pickle at all")
    with pytest.raises(ModelError):
        load_state_dict(tmp_path / "junk.pth")


def _torch_forward(state, x):
    """PyTorch's own ops driven by the state dict alone (its key order is the modules' order; strides
    from the architecture: the stem and each stage's first block downsample)."""
    import torch
    import torch.nn.functional as F
    t = {k: torch.from_numpy(v) for k, v in state.items()}

    def block(x, name, stride=1, act=True):
        w = t[f"{name}.conv.weight"]
        groups = w.shape[0] if w.shape[1] == 1 and w.shape[0] > 1 else 1
        pad = (w.shape[-1] // 2) if w.shape[-1] == 3 else 0
        x = F.conv2d(x, w, stride=stride, padding=pad, groups=groups)
        x = F.batch_norm(x, t[f"{name}.bn.running_mean"], t[f"{name}.bn.running_var"], t[f"{name}.bn.weight"],
                         t[f"{name}.bn.bias"], training=False, eps=1e-5)
        return F.prelu(x, t[f"{name}.prelu.weight"]) if act else x

    def dw(x, name, stride, residual):
        y = block(x, f"{name}.conv")
        y = block(y, f"{name}.conv_dw", stride)
        y = block(y, f"{name}.project", act=False)
        if f"{name}.se_module.fc1.weight" in t:
            s = F.adaptive_avg_pool2d(y, 1)
            for i, fc in ((1, "fc1"), (2, "fc2")):
                s = F.conv2d(s, t[f"{name}.se_module.{fc}.weight"])
                s = F.batch_norm(s, t[f"{name}.se_module.bn{i}.running_mean"], t[f"{name}.se_module.bn{i}.running_var"],
                                 t[f"{name}.se_module.bn{i}.weight"], t[f"{name}.se_module.bn{i}.bias"],
                                 training=False, eps=1e-5)
                s = F.relu(s) if i == 1 else torch.sigmoid(s)
            y = y * s
        return x + y if residual else y

    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    x = block(x, "conv1", 2)
    x = block(x, "conv2_dw")
    for stem, stage in (("conv_23", "conv_3"), ("conv_34", "conv_4"), ("conv_45", "conv_5")):
        x = dw(x, stem, 2, False)
        n = 1 + max(int(k.split(".")[2]) for k in t if k.startswith(f"{stage}.model."))
        for b in range(n):
            x = dw(x, f"{stage}.model.{b}", 1, True)
    x = block(x, "conv_6_sep")
    x = block(x, "conv_6_dw", act=False).flatten(1)
    x = F.linear(x, t["linear.weight"])
    x = F.batch_norm(x, t["bn.running_mean"], t["bn.running_var"], t["bn.weight"], t["bn.bias"], training=False,
                     eps=1e-5)
    return torch.softmax(F.linear(x, t["prob.weight"]), dim=1).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["minifasnet-v2", "minifasnet-v1se"])
def test_keras_minifasnet_reproduces_pytorch(name, weights_dir):
    pytest.importorskip("torch", reason="torch (CPU) is only needed for this check; .ci/run installs it where "
                        "the machine has its wheel")
    from facegate.convert.pad.minifasnet import PRETRAINED, pretrained
    model, scale = pretrained(name, weights_dir)
    assert scale == PRETRAINED[name][1]
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(0, 255, (3, 80, 80, 3)),                       # noise
                        np.tile(np.linspace(0, 255, 80)[None, :, None, None], (1, 1, 80, 3)).transpose(0, 2, 1, 3),
                        np.full((1, 80, 80, 3), 128.0)]).astype(np.float32)
    keras_p = model.predict(x, verbose=0)
    torch_p = _torch_forward(load_state_dict(weights_dir / PRETRAINED[name][2]), x)
    assert np.abs(keras_p - torch_p).max() < 1e-4, np.abs(keras_p - torch_p).max()
    assert (keras_p.argmax(1) == torch_p.argmax(1)).all()


def test_a_relu_net_is_the_published_net_with_zero_slopes(weights_dir):
    """`activation="relu"` changes the activations and nothing else: the ReLU net computes exactly what
    the published net computes once its PReLU slopes are set to zero."""
    import keras

    from facegate.convert.pad.minifasnet import build
    from facegate.convert.pad.train import starting_nets
    relu, prelu, scale = starting_nets("minifasnet-v2", weights_dir, "relu")
    assert scale == 2.7 and relu.count_params() < prelu.count_params()
    assert not any(isinstance(layer, keras.layers.PReLU) for layer in relu.layers)
    x = np.random.default_rng(2).uniform(0, 255, (4, 80, 80, 3)).astype(np.float32)
    before = prelu.predict(x, verbose=0)
    for layer in prelu.layers:
        if isinstance(layer, keras.layers.PReLU):
            layer.set_weights([np.zeros_like(layer.get_weights()[0])])
    zero_slopes = prelu.predict(x, verbose=0)
    assert np.abs(relu.predict(x, verbose=0) - zero_slopes).max() < 1e-5
    assert np.abs(before - zero_slopes).max() > 1e-3          # the slopes did matter: fine-tuning follows
    with pytest.raises(ModelError, match="unknown activation"):
        build("V2", activation="swish")


@pytest.mark.slow
def test_an_int8_relu_net_has_no_float_passes_and_its_card_says_so(weights_dir, tmp_path):
    """The published net keeps PReLU float in int8 (dequantise / PReLU / quantise around every
    activation); the ReLU net's int8 file is integer from its input to the softmax."""
    from facegate.convert.pad.export import INT8_FLOAT_OPS, export_set, present_ops
    from facegate.convert.pad.train import starting_nets
    from facegate.edge.cards import load_card
    relu, prelu, scale = starting_nets("minifasnet-v2", weights_dir, "relu")
    assert present_ops(prelu, INT8_FLOAT_OPS) == ("SOFTMAX", "PRELU")
    assert present_ops(relu, INT8_FLOAT_OPS) == ("SOFTMAX",)
    crops = np.random.default_rng(3).uniform(0, 255, (24, 80, 80, 3)).astype(np.float32)
    export_set({"minifasnet-v2": (relu, scale)}, tmp_path, "relu", 0.5, {}, {"minifasnet-v2": crops},
               {"minifasnet-v2": "test"}, precisions=("int8",))
    path = tmp_path / "relu-int8" / "minifasnet-v2.tflite"
    assert load_card(path).quantization == "int8 (SOFTMAX float)"
    from ai_edge_litert.interpreter import Interpreter
    ops = [d["op_name"] for d in Interpreter(model_path=str(path))._get_ops_details()]  # noqa: SLF001
    assert "PRELU" not in ops and ops.count("DEQUANTIZE") == 1 and ops.count("QUANTIZE") == 1


def test_a_relu_net_learns_not_to_forget_the_published_net(weights_dir, tmp_path):
    """With `--keep-pretrained`, the second target is the *published* net's answer on each view; a ReLU
    net starts from a different function, so its teacher must be the published PReLU net, not itself."""
    import keras

    from facegate.convert.pad.data import PadSample
    from facegate.convert.pad.finetune import FinetuneConfig, finetune
    from facegate.convert.pad.train import starting_nets
    model, published, scale = starting_nets("minifasnet-v2", weights_dir, "relu")
    assert model is not published and any(isinstance(layer, keras.layers.PReLU) for layer in published.layers)
    same, same_published, _ = starting_nets("minifasnet-v2", weights_dir)
    assert same is same_published
    with pytest.raises(ModelError, match="unknown activation 'swish'"):
        starting_nets("minifasnet-v2", weights_dir, "swish")

    class Spy:
        """The published net, recording the views it is asked about."""
        views = 0

        def predict_on_batch(self, x):
            Spy.views += len(x)
            return published.predict_on_batch(x)

    rng = np.random.default_rng(4)
    samples = [PadSample(Path(f"{kind}/{i}.jpg"), kind == "live", "none" if kind == "live" else "print", "nuaa", "1")
               for kind in ("live", "spoof") for i in range(2)]
    images = {s.key: rng.integers(0, 255, (120, 120, 3), np.uint8) for s in samples}
    boxes = {s.key: np.array([30, 30, 90, 90], np.float32) for s in samples}
    cfg = FinetuneConfig(epochs=1, batch=4, keep_pretrained=1.0, activation="relu")
    finetune(model, scale, images, samples, samples, boxes, tmp_path / "net", cfg, progress=False, published=Spy())
    assert Spy.views == len(samples)


def test_the_recipe_options_choose_the_activation(capsys):
    from facegate.apps.cli import build_parser, main
    from facegate.apps.common import pad_recipe
    args = build_parser().parse_args(["liveness", "train", "--out-root", "o", "--work", "w", "--activation", "relu"])
    assert pad_recipe(args).activation == "relu"
    args = build_parser().parse_args(["eval", "pad", "--protocol", "leave-one-source-out"])
    assert pad_recipe(args).activation == "prelu"
    with pytest.raises(SystemExit) as exc:
        main(["liveness", "train", "--out-root", "o", "--work", "w", "--activation", "swish"])
    assert exc.value.code == 2 and "invalid choice: 'swish'" in capsys.readouterr().err


def test_int8_calibration_crops_come_from_every_source():
    """pad_dev's training split lists its sources in turn (the first 250 are all NUAA): the crops an int8
    file is calibrated on are spread over the whole list, so every camera's activations are in range."""
    from facegate.convert.pad.data import PadSample
    from facegate.convert.pad.export import representative_crops, spread
    assert spread(list(range(10)), 4) == [0, 3, 6, 9] and spread([1, 2], 5) == [1, 2]
    samples = [PadSample(Path(f"live/{src}{i}.jpg"), True, "none", src, str(i))
               for src in ("nuaa", "celebaspoof", "msu") for i in range(100)]
    grey = {s.key: np.full((60, 60, 3), 10 * ("nuaa", "celebaspoof", "msu").index(s.source), np.uint8)
            for s in samples}
    boxes = {s.key: np.array([20, 20, 40, 40], np.float32) for s in samples}
    crops = representative_crops({"net": (None, 1.0)}, grey, samples, boxes, n=30)["net"]
    assert crops.shape == (30, 80, 80, 3) and sorted(set(crops[:, 0, 0, 0].tolist())) == [0.0, 10.0, 20.0]
