"""Synthetic replays and prints made from live faces (convert/pad/synthetic.py) and their use in fine-tuning."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.convert.pad.synthetic import _grid, printed, replay, synthetic_attack


def _face_like(size: int = 80) -> np.ndarray:
    """A smooth, saturated test crop: a skin-coloured disc on a dark background."""
    yy, xx = np.mgrid[0:size, 0:size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2
    crop = np.zeros((size, size, 3), np.uint8)
    crop[disc] = (200, 140, 110)
    return crop


def test_a_replay_lifts_the_black_level_and_is_reproducible():
    crop = _face_like()
    first = replay(crop, np.random.default_rng(3))
    assert first.shape == crop.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, replay(crop, np.random.default_rng(3)))
    background = ~np.any(crop > 0, axis=2)
    # a lit panel is never black where the scene was, except along a bezel
    lifted = [np.median(replay(crop, np.random.default_rng(s))[background]) for s in range(20)]
    assert np.median(lifted) > 4, lifted


def test_the_screen_grid_has_the_pitch_asked_for():
    g = _grid(120, pitch=6.0, angle=0.0)
    assert g.shape == (120, 120, 3) and 0.8 < g.mean() < 1.05
    row = g[0, :, 0]                                   # red sub-pixels along a row: a third of the pitch
    assert abs(row.mean() - 1.0) < 0.1
    spectrum = np.abs(np.fft.rfft(row - row.mean()))
    assert int(np.argmax(spectrum)) == 120 // 6        # 20 periods across 120 px


def test_a_replay_adds_fine_texture_a_flat_area_never_had():
    """The sub-pixel grid, area-resampled to the crop, leaves periodic texture (moire) on a flat crop."""
    flat = np.full((80, 80, 3), 128, np.uint8)
    spectra = []
    for seed in range(10):
        x = replay(flat, np.random.default_rng(seed)).astype(np.float32).mean(axis=2)
        x = x[10:70, 10:70]                                           # away from any bezel
        power = np.abs(np.fft.fft2(x - x.mean())) ** 2
        spectra.append(power.max() / power.mean())
    assert np.median(spectra) > 20, spectra                         # white noise alone: a few


def test_a_print_loses_saturation_and_contrast():
    crop = _face_like()
    out = printed(crop, np.random.default_rng(1))
    assert out.shape == crop.shape and out.dtype == np.uint8
    out = out.astype(np.float32)
    face = np.any(crop > 0, axis=2)
    spread_in = np.ptp(crop[face].astype(np.float32).mean(axis=0))
    assert np.ptp(out[face].mean(axis=0)) < spread_in                 # 90 levels between R and B before
    assert out.min() > 5 and out.max() < 250                          # paper is neither black nor white


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown synthetic attack 'mask'"):
        synthetic_attack(_face_like(), np.random.default_rng(0), kinds=("mask",))


def test_fine_tuning_batches_label_synthetic_attacks_as_attacks():
    """With every live view turned into a synthetic attack, a batch of live people is all attacks, and
    the attacks of the batch stay attacks."""
    from facegate.convert.pad.data import PadSample
    from facegate.convert.pad.finetune import FinetuneConfig, training_batch
    rng = np.random.default_rng(0)
    image = np.zeros((240, 240, 3), np.uint8)
    image[60:180, 80:160] = (200, 140, 110)
    box = np.array([80, 60, 160, 180], np.float32)
    batch = [PadSample(Path(kind) / f"{i}.jpg", kind == "live", "none" if kind == "live" else "print", "test", str(i))
             for i, kind in enumerate(["live", "live", "spoof", "live"])]
    images = {s.key: image for s in batch}
    boxes = {s.key: box for s in batch}
    x, y = training_batch(batch, images, boxes, 2.7, rng, FinetuneConfig())
    assert x.shape == (4, 80, 80, 3) and y[:, 0].tolist() == [1, 1, 0, 1]
    # switched off, it takes nothing from the random stream: the views are those of the plain recipe
    from facegate.convert.pad.finetune import training_view
    plain = np.random.default_rng(7)
    expect = np.stack([training_view(images[s.key], boxes[s.key], 2.7, plain, FinetuneConfig()) for s in batch])
    np.testing.assert_array_equal(training_batch(batch, images, boxes, 2.7, np.random.default_rng(7),
                                                 FinetuneConfig())[0], expect)
    x, y = training_batch(batch, images, boxes, 2.7, rng, FinetuneConfig(synthetic_attacks=1.0))
    assert y[:, 0].tolist() == [0, 0, 0, 0]
    x, y = training_batch(batch, images, boxes, 2.7, rng, FinetuneConfig(synthetic_attacks=0.5))
    assert y[2, 0] == 0 and set(y[:, 0].tolist()) <= {0.0, 1.0}


def test_the_cli_refuses_a_share_outside_0_to_1(capsys):
    from facegate.apps.cli import main
    assert main(["liveness", "crossval", "--work", "/tmp/never-written", "--synthetic-attacks", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--synthetic-attacks is a share between 0 and 1" in err and "Traceback" not in err
