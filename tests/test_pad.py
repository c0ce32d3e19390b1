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
