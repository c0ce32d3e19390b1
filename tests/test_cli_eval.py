"""Each eval command on a tiny subset: exit code, JSON/markdown/plots written, numbers sane."""
import json
import shutil
from pathlib import Path

import pytest

from facegate.apps.cli import main


def _json(folder: Path) -> dict:
    files = sorted(folder.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


@pytest.mark.slow
def test_eval_lfw_subset(tmp_path, lfw_dir):
    out = tmp_path / "lfw"
    assert main(["eval", "lfw", "--lfw-dir", str(lfw_dir), "--max-pairs", "40", "--out", str(out),
                 "--no-progress", "--no-cache"]) == 0
    r = _json(out)
    assert r["pairs"] == 40 and r["folds"] == 10
    assert r["accuracy_mean"] >= 0.85 and r["roc_auc"] >= 0.9
    assert r["tar_at_far_1e-3"] is None
    assert {p for p in r["plots"]} == {p.name for p in out.glob("*.png")}
    md = next(out.glob("*.md")).read_text()
    assert "facegate eval lfw" in md and "accuracy" in md


@pytest.mark.slow
def test_eval_pairs_tsv_with_no_face_image(tmp_path, lfw_images):
    root = tmp_path / "imgs"
    names = list(lfw_images)[:3]
    for n in names:
        (root / n).mkdir(parents=True)
        for p in lfw_images[n][:2]:
            shutil.copy(p, root / n / p.name)
    import cv2
    import numpy as np
    cv2.imwrite(str(root / "blank.jpg"), np.full((250, 250, 3), 128, np.uint8))
    rows = []
    for fold, n in enumerate(names):
        a, b = sorted((root / n).iterdir())
        rows.append(f"{n}/{a.name}\t{n}/{b.name}\t1\t{fold}")
        other = names[(fold + 1) % len(names)]
        rows.append(f"{n}/{a.name}\t{other}/{sorted((root / other).iterdir())[1].name}\t0\t{fold}")
    rows.append(f"blank.jpg\t{names[0]}/{lfw_images[names[0]][0].name}\t0\t0")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert main(["eval", "pairs", "--pairs", str(pairs), "--root", str(root), "--out", str(out),
                 "--no-progress", "--no-cache"]) == 0
    r = _json(out)
    assert r["pairs"] == 7 and r["images_without_face"] == 1
    assert r["no_face_examples"] == [str(root / "blank.jpg")]
    assert r["roc_auc"] > 0.9


def test_eval_errors_have_exit_codes(tmp_path, capsys):
    assert main(["eval", "pairs", "--pairs", str(tmp_path / "missing.txt"), "--root", str(tmp_path)]) == 5
    assert "pairs file not found" in capsys.readouterr().err
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a.jpg\tb.jpg\t1\t0\n")
    assert main(["eval", "pairs", "--pairs", str(pairs), "--root", str(tmp_path)]) == 5
    assert "missing" in capsys.readouterr().err
    assert main(["eval", "lfw", "--model", str(tmp_path / "nope.tflite"), "--lfw-dir", str(tmp_path)]) == 5


def test_eval_wider_subset(tmp_path, wider_dir):
    out = tmp_path / "wider"
    assert main(["eval", "wider", "--images", str(wider_dir / "images"), "--max-images", "4",
                 "--out", str(out), "--no-progress"]) == 0
    r = _json(out)
    assert r["images"] == 4 and r["detections"] > 0
    assert 0.5 < r["ap_easy"] <= 1.0 and 0 < r["ap_hard"] < r["ap_easy"] + 0.2
    assert r["timing_640x480"]["ms_median"] > 0
    assert (out / r["plots"][0]).stat().st_size > 10_000
    # the default detector (the student) runs at the thresholds its cards carry
    assert r["cascade"] == {"thresholds": [0.3, 0.5, 0.6], "pyramid_factor": 0.709, "chained_pyramid": False,
                            "nms": "reference"}
    # the door's faster settings: recorded with the numbers, still finds the faces
    assert main(["eval", "wider", "--images", str(wider_dir / "images"), "--max-images", "4", "--out", str(out),
                 "--no-progress", "--chained-pyramid", "--pyramid-factor", "0.6"]) == 0
    fast = _json(out)
    assert fast["cascade"]["chained_pyramid"] and fast["cascade"]["pyramid_factor"] == 0.6
    assert fast["ap_easy"] > 0.5


@pytest.mark.slow
def test_eval_celebrity5(tmp_path):
    out = tmp_path / "c5"
    assert main(["eval", "celebrity5", "--out", str(out), "--no-progress"]) == 0
    r = _json(out)
    assert r["val_images"] == 25 and r["train_images"] == 93
    assert r["svm_accuracy"] == 1.0  # the tutorial's result
    assert r["nn1_accuracy"] >= 0.96


def test_detect_command_prints_faces(capsys, lfw_images):
    path = next(iter(lfw_images.values()))[0]
    assert main(["detect", str(path), "--detector-format", "onnx"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["image"] == str(path) and len(line["faces"]) >= 1
    assert len(line["faces"][0]["landmarks"]) == 5


def test_detect_corrupt_image_exit_code(tmp_path, capsys):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"junk")
    assert main(["detect", str(bad)]) == 3
    assert "not a readable image" in capsys.readouterr().err


def test_eval_lfw_cross_model_probe(tmp_path, lfw_dir):
    """Gallery side embedded with one model, probe side with another (here int8 vs fp16 student)."""
    from facegate.edge.registry import MODELS_DIR
    d = MODELS_DIR / "facenet-student"
    out = tmp_path / "x"
    assert main(["eval", "lfw", "--lfw-dir", str(lfw_dir), "--max-pairs", "40", "--out", str(out), "--no-progress",
                 "--model", str(d / "facenet-student_int8.tflite"),
                 "--probe-model", str(d / "facenet-student_fp16.tflite")]) == 0
    r = _json(out)
    assert r["probe_model"].startswith("facenet-student-fp16") and r["pairs"] == 40
    assert r["roc_auc"] > 0.8


def test_eval_lfw_detect_student_against_teacher(tmp_path, lfw_dir):
    out = tmp_path / "d"
    assert main(["eval", "lfw-detect", "--lfw-dir", str(lfw_dir), "--max-images", "30", "--out", str(out),
                 "--no-progress"]) == 0
    r = json.loads(next(out.glob("*.json")).read_text())
    assert r["images"] == 30 and r["reference"].startswith("mtcnn-teacher")
    assert r["detection_rate"] >= 0.9 and r["landmark_error_iod_mean"] < 0.1
    assert next(out.glob("*.png")).stat().st_size > 1000


def _identity_folder(tmp_path, lfw_dir, people: int = 12, per_person: int = 4):
    """A folder-per-identity set of LFW people with enough photos (symlinks; nothing copied)."""
    root = tmp_path / "ids"
    chosen = [d for d in sorted((lfw_dir / "images").iterdir()) if len(list(d.glob("*.jpg"))) >= per_person][:people]
    for d in chosen:
        (root / d.name).mkdir(parents=True)
        for f in sorted(d.glob("*.jpg"))[:per_person]:
            (root / d.name / f.name).symlink_to(f)
    return root


def test_identity_pairs_keep_identities_inside_their_fold(tmp_path):
    from facegate.convert.evaluate.templates import identity_pairs
    paths = [tmp_path / f"{p}_{i}.jpg" for p in "abcdefghij" for i in range(3)]
    labels = [p.name[0] for p in paths]
    pairs = identity_pairs(paths, labels, folds=5)
    fold_of = {}
    for pair in pairs:
        for p in (pair.a, pair.b):
            assert fold_of.setdefault(p.name[0], pair.fold) == pair.fold
        assert (pair.a.name[0] == pair.b.name[0]) == pair.same
    assert sum(p.same for p in pairs) == 10 * 3 == sum(not p.same for p in pairs)


def test_calibrate_pca_then_eval_templates_tiny_run(tmp_path, lfw_dir, capsys):
    import json

    from facegate.edge.gallery.projection import Projection
    ids = _identity_folder(tmp_path, lfw_dir)
    out = tmp_path / "student.pca8.npz"
    assert main(["calibrate", "pca", "--model", "facenet-student", "--dims", "8", "--data", str(ids), "--no-lfw",
                 "--per-identity", "4", "--hold-out-every", "2", "--fars", "1e-1", "--out", str(out),
                 "--no-progress"]) == 0
    p = Projection.load(out)
    assert p.dims == 8 and p.input_dim == 128 and 0 < p.info["variance_kept"] <= 1
    assert set(p.thresholds) == {"1e-1"} and 0 < p.thresholds["1e-1"] < 1
    assert "written to" in capsys.readouterr().out
    res = tmp_path / "eval"
    assert main(["eval", "templates", "--lfw-dir", str(lfw_dir), "--celeba", str(ids), "--per-identity", "4",
                 "--max-pairs", "60", "--pca", str(out), "--model", "facenet-student", "--out", str(res),
                 "--no-progress"]) == 0
    r = json.loads((res / "template_storage.json").read_text())
    assert set(r["sets"]) == {"LFW View 2", "celeba_dev"}
    rows = r["sets"]["LFW View 2"]["storages"]
    assert list(rows) == ["float32", "float16", "int8", "float32+pca8", "int8+pca8"]
    assert r["bytes_per_template"] == {"float32": 512, "float16": 256, "int8": 132, "float32+pca8": 32,
                                       "int8+pca8": 12}
    assert rows["float32"]["accuracy_loss_pt"] == 0 and rows["float32"]["accuracy_mean"] > 0.9
    assert abs(rows["int8"]["accuracy_loss_pt"]) < 5
    assert (res / "template_storage.md").read_text().count("| LFW View 2") == 5
