"""Pruning reduces parameters for real and a short distillation fine-tune brings outputs back."""
import keras
import numpy as np
import pytest

from facegate.convert.prune import apply_masks, distill_finetune, find_chains, magnitude_masks, prune_channels, prune_magnitude
from facegate.edge.face.embed import l2_normalise

pytestmark = pytest.mark.slow


def small_net(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(32, 3, use_bias=False, name="c1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Activation("relu", name="a1")(x)
    x = keras.layers.Conv2D(48, 3, name="c2")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="p2")(x)
    y = keras.layers.Conv2D(48, 1, name="c3")(x)            # feeds a residual sum: not prunable
    x = keras.layers.Add(name="sum")([x, y])
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(16, name="emb")(x))


def test_finds_only_safe_chains():
    chains = find_chains(small_net())
    assert [(c.producer, c.between, c.consumer) for c in chains] == [("c1", ["bn1", "a1"], "c2")]


def test_structured_pruning_shrinks_the_graph_and_keeps_the_kept_channels_exact():
    model = small_net()
    # make the BN non-trivial so the importance and the slicing are both exercised
    bn = model.get_layer("bn1")
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 1.5, 32), rng.normal(0, .1, 32), rng.normal(0, .1, 32), rng.uniform(.5, 1.5, 32)])
    slim, report = prune_channels(model, 0.5)
    assert slim.get_layer("c1").filters == 16 and slim.get_layer("c2").kernel.shape[2] == 16
    assert report.params_after < report.params_before
    assert slim.count_params() == report.params_after
    x = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
    # c1 outputs of the kept filters are identical to the original's
    sub_a = keras.Model(model.input, model.get_layer("a1").output)(x).numpy()
    sub_b = keras.Model(slim.input, slim.get_layer("a1").output)(x).numpy()
    kept = [int(np.argmin(np.abs(sub_a - sub_b[..., [j]]).sum(axis=(0, 1, 2)))) for j in range(16)]
    np.testing.assert_allclose(sub_b, sub_a[..., kept], atol=1e-5)
    with pytest.raises(ValueError):
        prune_channels(model, 1.5)


def test_finetune_brings_the_pruned_model_back():
    teacher = small_net()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 32, 32, 3)).astype(np.float32)
    targets = l2_normalise(teacher.predict(x, verbose=0))
    slim, _ = prune_channels(teacher, 0.6)

    def cosine():
        return float(np.mean(np.sum(l2_normalise(slim.predict(x[:64], verbose=0)) * targets[:64], axis=1)))
    before = cosine()
    losses = distill_finetune(slim, targets, x, steps=120, batch_size=32, learning_rate=3e-3)
    after = cosine()
    assert losses[-1] < losses[0]
    assert after > before and after > 0.95


def test_magnitude_pruning_masks_stay_zero_through_finetune():
    model = small_net()
    pruned, report, masks = prune_magnitude(model, 0.5)
    assert "dw" in masks  # depthwise kernels are pruned too (tfmot never does)
    for name, mask in masks.items():
        k = pruned.get_layer(name).get_weights()[0]
        assert np.mean(k == 0) >= 0.45 and np.all(k[mask == 0] == 0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 32, 32, 3)).astype(np.float32)
    distill_finetune(pruned, l2_normalise(model.predict(x, verbose=0)), x, steps=10, batch_size=16, masks=masks)
    for name, mask in masks.items():
        assert np.all(pruned.get_layer(name).get_weights()[0][mask == 0] == 0)
    assert report.params_after < 0.6 * report.params_before
    m2 = magnitude_masks(model, 0.9, pattern="^c")
    assert set(m2) == {"c1", "c2", "c3"}
    apply_masks(model, m2)
    assert np.mean(model.get_layer("c2").get_weights()[0] == 0) >= 0.89


def test_data_aware_pruning_compensates_across_resolutions():
    """Chains at different spatial sizes each get their own activation statistics (regression:
    a shared count once made the compensation wrong and collapsed a real FaceNet)."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 3))
    x = inp
    for i, filters in enumerate((24, 32, 40, 48)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"c{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"a{i}")(x)
        if i == 1:
            x = keras.layers.MaxPooling2D(name="pool")(x)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(x))
    rng = np.random.default_rng(0)
    for i, f in enumerate((24, 32, 40, 48)):
        model.get_layer(f"bn{i}").set_weights([rng.uniform(.5, 1.5, f), rng.normal(.5, .3, f), rng.normal(0, .1, f),
                                                rng.uniform(.5, 1.5, f)])
    # c0->c1 at 32x32 and c2->c3 at 16x16; c1 feeds the pool, so it starts no chain
    assert [(c.producer, c.consumer) for c in find_chains(model)] == [("c0", "c1"), ("c2", "c3")]
    data = rng.normal(size=(64, 32, 32, 3)).astype(np.float32)
    ref = model.predict(data[:16], verbose=0)
    err = {}
    for mode, d in (("l1", None), ("data", data)):
        slim, _ = prune_channels(model, 0.3, data=d)
        err[mode] = float(np.abs(slim.predict(data[:16], verbose=0) - ref).mean())
    assert err["data"] < 0.25 * err["l1"], err
