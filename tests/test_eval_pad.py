"""`facegate eval pad`: the threshold-free PAD numbers on hand-made scores, the folder formats it reads,
the baselines' crops, and the whole evaluation (card protocol and leave-one-source-out) on real pad_dev
images with the committed set and both baselines."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.convert.pad.data import load_pad_folder
from facegate.convert.pad.metrics import pad_curves, threshold_at_apcer
from facegate.convert.pad.scorers import dtn_crop
from facegate.edge.errors import DatasetError

SHARED = Path(os.environ.get("FACEGATE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
PAD = SHARED / "datasets" / "pad_dev"
WEIGHTS = SHARED / "pretrained" / "minifasnet"


def test_threshold_at_apcer_holds_every_attack_type_to_the_target():
    live = np.array([True] * 4 + [False] * 6)
    attacks = ["none"] * 4 + ["print"] * 4 + ["replay"] * 2
    scores = np.array([0.9, 0.8, 0.6, 0.4, 0.1, 0.2, 0.3, 0.7, 0.5, 0.05])
    t = threshold_at_apcer(scores, live, attacks, 0.0)          # no attack of any type accepted
    assert 0.7 < t < 0.7001
    assert threshold_at_apcer(scores, live, attacks, 0.25) == pytest.approx(0.5, abs=1e-6)   # print may lose 1 of 4
    assert threshold_at_apcer(scores, live, attacks, 0.5) == pytest.approx(0.2, abs=1e-6)    # print 2 of 4 (0.7, 0.3)
    # an attack without a face is never accepted: it needs no threshold
    assert threshold_at_apcer(np.array([0.9, np.nan]), np.array([True, False]), ["none", "print"], 0.0) == -np.inf


def test_pad_curves_on_hand_made_scores():
    live = np.array([True, True, True, True, False, False, False, False])
    attacks = ["none"] * 4 + ["print"] * 4
    perfect = pad_curves(np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]), live, attacks)
    assert perfect["auc"] == 1.0 and perfect["eer"] == 0.0 and perfect["bpcer_at_apcer_1pct"] == 0.0
    one_swap = pad_curves(np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.05]), live, attacks)
    assert one_swap["auc"] == pytest.approx(15 / 16) and one_swap["eer"] == pytest.approx(0.25)
    assert one_swap["bpcer_at_apcer_1pct"] == 0.25            # the threshold must clear 0.6: one live person out
    no_face = pad_curves(np.array([0.9, np.nan, 0.7, 0.6, np.nan, 0.4, 0.3, 0.2]), live, attacks)
    assert no_face["bpcer_at_apcer_1pct"] == 0.25              # the live image without a face is refused
    assert no_face["auc"] == pytest.approx(12.5 / 16, abs=1e-4)  # below every attack; the two faceless ones tie
    assert len(no_face["det"]["apcer"]) == len(no_face["det"]["bpcer"])


def _write(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 40, 3), value, np.uint8))
    return path


def test_live_and_spoof_folders_are_read_with_attack_types(tmp_path):
    _write(tmp_path / "live" / "a.jpg")
    _write(tmp_path / "spoof" / "print" / "b.jpg")
    _write(tmp_path / "spoof" / "c.png")
    (tmp_path / "spoof" / "notes.txt").write_text("not an image")
    samples = load_pad_folder(tmp_path)
    assert sorted((s.path.name, s.live, s.attack) for s in samples) == [("a.jpg", True, "none"),
                                                                        ("b.jpg", False, "print"),
                                                                        ("c.png", False, "unspecified")]
    assert {s.source for s in samples} == {tmp_path.name}


@pytest.mark.parametrize("layout, message", [
    ({"live/a.jpg": None}, "neither labels.tsv"),
    ({"live/a.jpg": None, "spoof/": None}, "both live and spoof"),
    ({"labels.tsv": "path\tlabel\nx.jpg\tfake\n"}, "'live' or 'spoof'"),
    ({"labels.tsv": "path\tlabel\nx.jpg\tlive\ny.jpg\tspoof\n"}, "missing"),
])
def test_bad_folders_are_refused_with_a_message(tmp_path, layout, message):
    for name, text in layout.items():
        if name.endswith("/"):
            (tmp_path / name).mkdir(parents=True)
        elif text is None:
            _write(tmp_path / name)
        else:
            (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_pad_folder(tmp_path)


def test_bad_folder_through_the_cli_is_an_exit_code_not_a_traceback(tmp_path, capsys):
    from facegate.apps.cli import main
    assert main(["eval", "pad", "--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 5
    err = capsys.readouterr().err
    assert "neither labels.tsv" in err and "Traceback" not in err


def test_dtn_crop_is_the_square_around_the_box_inside_the_image():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :, 0] = np.arange(200)[None, :]                       # red encodes x
    crop = dtn_crop(img, np.array([90, 30, 110, 70]), size=64)   # 20x40 box -> 40x40 square about x=100
    assert crop.shape == (64, 64, 3) and crop.max() <= 1.0
    assert abs(crop[:, :, 0].mean() * 255 - 100) < 2 and abs(crop[:, 0, 0].mean() * 255 - 80) < 2
    edge = dtn_crop(img, np.array([0, 0, 30, 30]), size=64)      # shifted inside, not padded
    assert edge[:, :, 0].min() >= 0


@pytest.fixture(scope="module")
def pad_folder(tmp_path_factory):
    """A live/ + spoof/<type>/ folder of real pad_dev images (training-side people of the shipped set),
    plus one blank image in each (no face)."""
    if not (PAD / "labels.tsv").is_file() or not WEIGHTS.is_dir():
        pytest.skip("pad_dev or the MiniFASNet weights are missing")
    from facegate.convert.pad.data import load_pad_dev
    root = tmp_path_factory.mktemp("padeval") / "mini"
    picked: dict[str, int] = {}
    for s in load_pad_dev(PAD):
        kind = f"{s.source}-{s.attack}"
        if picked.get(kind, 0) >= 3 or s.attack in ("replay-phone", "replay-tablet"):
            continue
        picked[kind] = picked.get(kind, 0) + 1
        dest = root / ("live" if s.live else f"spoof/{s.attack}") / f"{s.source}_{s.path.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(s.path, dest)
    _write(root / "live" / "blank.jpg", 90)
    _write(root / "spoof" / "print" / "blank.jpg", 90)
    return root


@pytest.mark.slow
def test_eval_pad_reports_the_shipped_set_beside_both_baselines(pad_folder, tmp_path, capsys):
    from facegate.apps.cli import main
    out = tmp_path / "out"
    assert main(["eval", "pad", "--data", str(pad_folder), "--out", str(out), "--no-progress"]) == 0
    r = json.loads((out / "pad.json").read_text())
    assert r["model"] == "minifasnet-fp16" and r["threshold_source"] == "card"
    assert r["images"] == 20 and r["images_without_face"] == 2
    assert r["live"] == 10 and r["attacks"] == 10 and r["no_face_live"] == 1 and r["no_face_attack"] == 1
    # the blank live image is refused, and every live face the runtime itself refuses: the counts add up
    from facegate.edge.detect.face import pick_face
    from facegate.edge.images import load_rgb
    from facegate.edge.registry import load_detector, load_liveness
    checker, detector = load_liveness("minifasnet-fp16"), load_detector()
    refused = 0
    for path in sorted((pad_folder / "live").iterdir()):
        rgb = load_rgb(path)
        face = pick_face(detector.detect(rgb), rgb.shape)
        refused += face is None or not checker.check(rgb, face.box).live
    assert refused >= 1 and r["bpcer"] == pytest.approx(refused / 10) and r["bpcer"] <= 0.3
    assert r["apcer_worst"] == 0.0 and r["acer"] == pytest.approx(r["bpcer"] / 2)
    assert set(r["apcer_per_type"]) == {"print", "unspecified"} and r["apcer_per_type"]["print"]["n"] == 7
    assert r["auc"] > 0.9 and 0 <= r["eer"] <= 0.2 and 0 <= r["bpcer_at_apcer_1pct"] <= 1
    assert [b["model"] for b in r["baselines"]] == ["minifasnet-pretrained", "expo-dtn"]
    assert r["baselines"][1]["threshold"] == pytest.approx(0.8)
    assert set(r["per_source"]) == {"mini"}
    for png in ("pad_det.png", "pad_hist.png"):
        assert (out / png).stat().st_size > 10_000
    md = (out / "pad.md").read_text()
    assert "| minifasnet-fp16 |" in md and "expo-dtn" in md and "eval pad" in md
    assert "ACER" in capsys.readouterr().out


@pytest.mark.slow
def test_leave_one_source_out_holds_each_source_out(tmp_path, capsys):
    from facegate.apps.cli import main
    if not (PAD / "labels.tsv").is_file() or not WEIGHTS.is_dir():
        pytest.skip("pad_dev or the MiniFASNet weights are missing")
    out = tmp_path / "loso"
    assert main(["eval", "pad", "--protocol", "leave-one-source-out", "--max-images", "60", "--epochs", "1",
                 "--baselines", "minifasnet-pretrained", "--out", str(out), "--no-progress"]) == 0
    r = json.loads((out / "pad_loso.json").read_text())
    assert r["protocol"] == "leave-one-source-out" and r["epochs"] == 1
    names = [(e["model"], e["threshold_source"].split(" ")[0]) for e in r["scorers"]]
    assert names == [("fine-tuned (ours)", "BPCER"), ("minifasnet-pretrained", "BPCER"),
                     ("minifasnet-pretrained", "authors'")]
    for e in r["scorers"]:
        assert set(e["folds"]) == {"celebaspoof", "msu", "nuaa"}
        acers = [f["acer"] for f in e["folds"].values()]
        assert e["mean_acer"] == (None if None in acers else pytest.approx(np.mean(acers), abs=1e-4))
    # each fold is judged only on its held-out source
    ours = r["scorers"][0]["folds"]
    assert set(ours["nuaa"]["apcer_per_type"]) == {"print"} and set(ours["celebaspoof"]["apcer_per_type"]) == {"unspecified"}
    assert (out / "work" / "without-nuaa" / "minifasnet-v2.keras").is_file()
    assert "mean ACER" in capsys.readouterr().out


def test_extra_training_faces_join_every_folds_training_split_only(monkeypatch):
    """leave_one_source_out(extra_train=...): faces from outside the protocol's sources are trained on in
    every fold, never used to choose the checkpoint or threshold, never judged, never a fold of their own."""
    import facegate.convert.pad.train as train_module
    from facegate.convert.pad.data import PadSample
    from facegate.convert.pad.minifasnet import pretrained
    if not WEIGHTS.is_dir():
        pytest.skip("the MiniFASNet weights are missing")
    rng = np.random.default_rng(0)
    samples = [PadSample(Path(f"{src}/{subj}-{live}.jpg"), live, "none" if live else "print", src, f"{src}-{subj}")
               for src in ("a", "b", "c") for subj in range(8) for live in (True, False)]
    extra = [PadSample(Path(f"lfw/person{i}.jpg"), True, "none", "lfw", f"lfw-{i}") for i in range(3)]
    images = {s.key: rng.integers(0, 255, (120, 120, 3), dtype=np.uint8) for s in samples + extra}
    boxes = {s.key: np.array([30, 30, 90, 90], np.float32) for s in samples + extra}
    seen = []

    def recording_pair(weights_dir, images, train, val, boxes, work, epochs, progress=False, cfg=None):
        seen.append((train, val))
        return {n: pretrained(n, weights_dir) for n in ("minifasnet-v2", "minifasnet-v1se")}
    monkeypatch.setattr(train_module, "finetune_pair", recording_pair)
    folds = train_module.leave_one_source_out(samples, images, boxes, WEIGHTS, Path("unused"), [], extra_train=extra)
    assert [f["source"] for f in folds] == ["a", "b", "c"]                   # no fold for the extra faces
    for fold, (train, val) in zip(folds, seen):
        assert all(e in train for e in extra) and not any(e in val for e in extra)
        assert {s.source for s in train} == {"a", "b", "c", "lfw"} - {fold["source"]}
        (_, scores), = fold["scorers"]
        assert len(scores) == 16                                             # judged on the held-out source only
