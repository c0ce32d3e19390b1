"""`facegate calibrate thresholds`: the card's thresholds and the USAGE page quoting them move together."""
from __future__ import annotations

import shutil

import pytest

from facegate.edge.cards import load_card
from facegate.edge.registry import MODELS_DIR

pytest.importorskip("tensorflow")


def test_calibration_rewrites_card_and_usage(tmp_path):
    from facegate.calibration.calibrate import calibrate_card
    src = MODELS_DIR / "facenet-student" / "facenet-student_fp16.tflite"
    model = tmp_path / src.name
    for suffix in ("", ".json", ".USAGE.md"):
        shutil.copy2(src.with_name(src.name + suffix), model.with_name(model.name + suffix))
    from conftest import DATASETS, _need
    celeba_dir = _need(DATASETS / "celeba_dev" / "images")
    people = tmp_path / "people"
    for person in sorted(p for p in celeba_dir.iterdir() if p.is_dir())[:12]:   # 1,056 impostor pairs
        (people / person.name).mkdir(parents=True)
        for img in sorted(person.glob("*.jpg"))[:4]:
            shutil.copy2(img, people / person.name / img.name)
    stale = load_card(model).thresholds["1e-2"]
    result = calibrate_card(model, data=people, per_identity=4, fars=(1e-2,), progress=False)
    new = result["thresholds"]["1e-2"]["threshold"]
    assert result["genuine"] >= 60 and result["impostor"] >= 1000 and new != stale
    card = load_card(model)
    assert card.thresholds["1e-2"] == pytest.approx(new) and card.accuracy["calibration"]["impostor_pairs"] > 0
    usage = model.with_name(model.name + ".USAGE.md").read_text()
    assert f"| 1e-2 | {new:.4f} |" in usage and f"| 1e-2 | {stale:.4f} |" not in usage


def test_detector_threshold_search_scores_only_training_images(wider_dir, tmp_path, capsys):
    """`facegate calibrate detector` on a few training images with a two-value P-Net grid: every tried
    setting is scored and printed, the best is the one with the highest objective, the result is written."""
    import json

    from facegate.apps.cli import main
    from facegate.calibration import detector_thresholds as dt

    seen = []
    r = dt.search_cascade_thresholds("mtcnn-student", wider=wider_dir, grid={0: (0.3, 0.6), 1: (0.7,), 2: (0.8,)},
                                     max_images=6, report=seen.append)
    assert [t["thresholds"] for t in r["tried"]] == [[0.3, 0.7, 0.8], [0.6, 0.7, 0.8]] and seen == r["tried"]
    best = max(r["tried"], key=lambda t: t["objective"])
    assert r["best"] == best["thresholds"] and 0 < best["objective"] <= 1
    assert "index % 4 != 0" in r["split"]
    out = tmp_path / "thresholds.json"
    assert main(["calibrate", "detector", "--detector", "mtcnn-student", "--wider", str(wider_dir),
                 "--max-images", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "best thresholds on the training images" in printed and "--thresholds" in printed
    written = json.loads(out.read_text())
    assert written["command"].startswith("facegate calibrate detector") and len(written["tried"]) >= 7

