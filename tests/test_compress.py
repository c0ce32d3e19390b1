"""Compressing a trained embedder student: bottleneck pruning keeps block interfaces, the
least-squares refit recovers what pruning removed, and a tiny block-wise distillation run trains,
saves a card and resumes."""
from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from facegate.convert.distill.compress import (  # noqa: E402
    CompressConfig,
    Compressor,
    matched_layers,
    parse_plan,
    prune_by_plan,
    refit_projections,
)
from facegate.convert.distill.embedder import save_student_file  # noqa: E402
from facegate.convert.distill.targets import CANVAS, TargetSet  # noqa: E402
from facegate.convert.prune import find_chains, prune_channels  # noqa: E402
from facegate.edge.errors import ModelError  # noqa: E402
from facegate.edge.face.embed import l2_normalise  # noqa: E402

L = keras.layers


def bottleneck_student(size: int = 112, seed: int = 0) -> keras.Model:
    """A two-block MobileFaceNet-like net: stem, a stride-2 bottleneck, a residual bottleneck,
    global depthwise head and a linear embedding (PReLU everywhere, like the shipped student)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = L.Conv2D(8, 3, strides=4, padding="same", name="stem")(inp)
    x = L.PReLU(shared_axes=[1, 2], name="stem_prelu")(x)
    for i, stride in enumerate((2, 1)):
        y = L.Conv2D(24, 1, name=f"block{i}_expand")(x)
        y = L.PReLU(shared_axes=[1, 2], name=f"block{i}_expand_prelu")(y)
        y = L.DepthwiseConv2D(3, strides=stride, padding="same", name=f"block{i}_dw")(y)
        y = L.PReLU(shared_axes=[1, 2], name=f"block{i}_dw_prelu")(y)
        y = L.Conv2D(8, 1, name=f"block{i}_project")(y)
        x = L.Add(name=f"block{i}_add")([x, y]) if stride == 1 else y
    x = L.DepthwiseConv2D(int(x.shape[1]), name="gdconv")(x)
    x = L.Conv2D(16, 1, name="embedding_conv")(x)
    return keras.Model(inp, L.Flatten(name="embedding")(x))


def test_a_bottleneck_expansion_is_one_chain_through_its_depthwise_conv():
    model = bottleneck_student()
    chains = {c.producer: (c.between, c.consumer) for c in find_chains(model, r"_expand$")}
    assert chains == {"block0_expand": (["block0_expand_prelu", "block0_dw", "block0_dw_prelu"], "block0_project"),
                      "block1_expand": (["block1_expand_prelu", "block1_dw", "block1_dw_prelu"], "block1_project")}
    slim, report = prune_channels(model, 0.5, r"_expand$")
    assert report.layers == {"block0_expand": (24, 12), "block1_expand": (24, 12)}
    assert slim.get_layer("block1_dw").get_weights()[0].shape == (3, 3, 12, 1)
    assert slim.get_layer("block1_project").get_weights()[0].shape == (1, 1, 12, 8)
    # the block interfaces (and so the residual sums and the embedding) keep their shapes
    for name in ("block0_project", "block1_add", "embedding"):
        assert tuple(slim.get_layer(name).output.shape) == tuple(model.get_layer(name).output.shape)
    # kept channels pass the depthwise conv unchanged: the slim dw output is a channel subset of the source's
    x = np.random.default_rng(0).normal(size=(2, 112, 112, 3)).astype(np.float32)
    full = keras.Model(model.input, model.get_layer("block0_dw_prelu").output)(x).numpy()
    cut = keras.Model(slim.input, slim.get_layer("block0_dw_prelu").output)(x).numpy()
    for j in range(cut.shape[-1]):
        assert np.min(np.abs(full - cut[..., [j]]).max(axis=(0, 1, 2))) < 1e-5


def _with_redundant_channels(model: keras.Model) -> keras.Model:
    """Make each bottleneck's inner channels 12..23 copies of 0..11 (read by the projection at 0.9x
    the weight): trained networks are redundant like this, random ones are not, and only redundancy
    lets a refit recover what pruning removed."""
    for block in ("block0", "block1"):
        for suffix in ("_expand", "_expand_prelu", "_dw", "_dw_prelu"):
            layer = model.get_layer(block + suffix)
            layer.set_weights([np.concatenate([w[..., :12, :], w[..., :12, :]], axis=-2) if suffix == "_dw" and w.ndim == 4
                               else np.concatenate([w[..., :12], w[..., :12]], axis=-1) for w in layer.get_weights()])
        project = model.get_layer(block + "_project")
        kernel, bias = project.get_weights()
        kernel[:, :, 12:] *= 0.9
        project.set_weights([kernel, bias])
    return model


def test_refit_recovers_what_pruning_removed():
    source = _with_redundant_channels(bottleneck_student())
    x = np.random.default_rng(1).normal(size=(48, 112, 112, 3)).astype(np.float32)
    slim, widths = prune_by_plan(source, [(r"_expand$", 0.5)], x[:32])
    assert widths == {"block0_expand": (24, 12), "block1_expand": (24, 12)}
    assert matched_layers(source, slim) == ["block0_project", "block1_project", "block1_add"]
    want = keras.Model(source.input, source.get_layer("block0_project").output).predict(x, verbose=0)

    def error(rows: slice) -> float:   # relative error of the first block's output
        got = keras.Model(slim.input, slim.get_layer("block0_project").output).predict(x[rows], verbose=0)
        return float(np.sum((got - want[rows]) ** 2) / np.sum((want[rows] - want[rows].mean()) ** 2))

    fit_before, held_before = error(slice(0, 32)), error(slice(32, None))
    residual = refit_projections(source, slim, ["block0_project", "block1_project"], x[:32])
    assert set(residual) == {"block0_project", "block1_project"} and all(0 <= r < 1 for r in residual.values())
    assert error(slice(0, 32)) < fit_before                     # least squares beats the pruned weights...
    assert error(slice(32, None)) < 0.6 * held_before, held_before   # ...and carries over to unseen inputs


def test_plan_parsing_refuses_what_would_fail_later():
    assert parse_plan([r"invresblock_\d+_conv$=0.625", "x=0.1"]) == [(r"invresblock_\d+_conv$", 0.625), ("x", 0.1)]
    for bad in ("no-ratio", "=0.5", "layer=1.5", "layer=abc", "(=0.5"):
        with pytest.raises(ValueError, match="--plan"):
            parse_plan([bad])
    with pytest.raises(ValueError, match="at least one"):
        parse_plan([])


def test_cli_reports_a_bad_plan_in_words(capsys):
    from facegate.apps.cli import main
    assert main(["distill", "compress", "--plan", "invresblock_conv", "--no-progress"]) == 2   # usage error
    err = capsys.readouterr().err
    assert "LAYER_REGEX=RATIO" in err and "Traceback" not in err


def _tiny_targets(n: int = 24) -> TargetSet:
    rng = np.random.default_rng(2)
    canvases = rng.integers(0, 256, size=(n, CANVAS, CANVAS, 3), dtype=np.uint8)
    labels = np.array([f"p{i % 4}" for i in range(n)])
    return TargetSet(np.array([f"k{i}" for i in range(n)]), labels, canvases,
                     l2_normalise(rng.normal(size=(n, 16))).astype(np.float32), "test-teacher")


def test_tiny_compress_run_trains_saves_a_card_and_resumes(tmp_path):
    source_path = tmp_path / "source.keras"
    save_student_file(bottleneck_student(), source_path, metrics={}, config={},
                      student={"architecture": "tiny-bottleneck", "embedding_dim": 16}, teacher="test", source="test")
    data = _tiny_targets()
    cfg = CompressConfig(source=str(source_path), plan=[(r"_expand$", 0.5)], out=tmp_path / "run", epochs=1, batch=8,
                         lr=3e-4, augment_strength=0, steps_per_epoch=2, prune_images=16, progress=False)
    run = Compressor(cfg, data, data.subset(np.arange(12)))
    assert run.slim.count_params() < run.source.count_params()
    x = next(run.batches(0))
    first = {k: float(v) for k, v in run._step(x).items()}
    assert set(first) == {"total", "blocks", "embedding"}
    for _ in range(30):
        last = {k: float(v) for k, v in run._step(x).items()}
    assert last["total"] < 0.7 * first["total"], (first, last)
    r = run.fit()
    assert r["epochs_done"] == 1 and (cfg.out / "pruned.keras").exists() and (cfg.out / "loss.png").exists()
    card = json.loads((cfg.out / "student.keras.json").read_text())
    student = card["accuracy"]["student"]
    assert student["architecture"] == "tiny-bottleneck-pruned" and student["plan"] == [["_expand$", 0.5]]
    assert student["inner_widths"] == {"block0_expand": [24, 12], "block1_expand": [24, 12]}
    assert card["input"]["size"] == 112 and "val_source_cosine_mean" in card["accuracy"]["distillation"]
    saved = keras.saving.load_model(cfg.out / "student.keras", compile=False)
    assert saved.get_layer("block1_dw").get_weights()[0].shape == (3, 3, 12, 1)

    with pytest.raises(ModelError, match="another --out"):   # the run folder's pruned net belongs to its own plan
        Compressor(CompressConfig(**{**cfg.__dict__, "plan": [(r"_expand$", 0.25)]}), data, None)
    again = Compressor(CompressConfig(**{**cfg.__dict__, "epochs": 2}), data, data.subset(np.arange(12)))
    assert again.fit()["epochs_done"] == 2
    rows = (cfg.out / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]   # untrained, then one row per epoch


def test_progressive_compress_prunes_a_compressed_student_further(tmp_path):
    """--start: a `distill compress` result is pruned again (here only block 0), keeps the trained
    weights of what this plan leaves alone, records both widths, and is still distilled from the source."""
    source_path = tmp_path / "source.keras"
    save_student_file(bottleneck_student(), source_path, metrics={}, config={},
                      student={"architecture": "tiny-bottleneck", "embedding_dim": 16}, teacher="test", source="test")
    data = _tiny_targets()
    first = CompressConfig(source=str(source_path), plan=[(r"_expand$", 0.5)], out=tmp_path / "first", epochs=1,
                           batch=8, lr=3e-4, augment_strength=0, steps_per_epoch=2, prune_images=16, progress=False)
    Compressor(first, data, None).fit()
    start = keras.saving.load_model(first.out / "student.keras", compile=False)

    cfg = CompressConfig(**{**first.__dict__, "plan": [(r"block0_expand$", 0.5)], "out": tmp_path / "second",
                            "start": str(first.out / "student.keras")})
    run = Compressor(cfg, data, None)
    assert run.widths == {"block0_expand": (24, 6), "block1_expand": (24, 12)}
    assert run.slim.get_layer("block0_dw").get_weights()[0].shape == (3, 3, 6, 1)
    for name in ("block1_expand", "block1_project"):     # untouched by this plan: the trained start's weights
        for got, want in zip(run.slim.get_layer(name).get_weights(), start.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    assert not np.allclose(run.slim.get_layer("block0_project").get_weights()[1],
                           start.get_layer("block0_project").get_weights()[1])   # refit after the new cut
    assert run.source.count_params() == bottleneck_student().count_params()     # distilled from the source
    run.fit()
    student = json.loads((cfg.out / "student.keras.json").read_text())["accuracy"]["student"]
    assert student["started_from"] == cfg.start and student["inner_widths"]["block0_expand"] == [24, 6]
    with pytest.raises(ModelError, match="started from"):      # the folder belongs to a run with that start
        Compressor(CompressConfig(**{**cfg.__dict__, "start": None}), data, None)

    other = tmp_path / "other.keras"      # not a pruned copy of the source: refused in words
    inp = keras.Input((112, 112, 3), name="image")
    save_student_file(keras.Model(inp, L.Flatten(name="embedding")(L.Conv2D(16, 112, name="c")(inp))), other,
                      metrics={}, config={}, student={"architecture": "x", "embedding_dim": 16}, teacher="t", source="t")
    with pytest.raises(ModelError, match="not a pruned copy"):
        Compressor(CompressConfig(**{**first.__dict__, "out": tmp_path / "third", "start": str(other)}), data, None)
