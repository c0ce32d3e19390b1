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
