"""Pair files and the WIDER protocol on inputs with known answers."""
import numpy as np
import pytest

from facegate.convert.evaluate.pairs import balanced_subset, read_lfw_pairs, read_pairs, read_tsv_pairs
from facegate.convert.evaluate.wider import GroundTruth, image_pr, read_gt_txt, wider_ap
from facegate.edge.errors import DatasetError


def test_lfw_pairs_format(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_text("2\t1\nAnn\t1\t2\nBob\t1\tCid\t3\nDan\t2\t4\nEve\t1\tFay\t1\n")
    pairs = read_lfw_pairs(f, tmp_path)
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (False, 0), (True, 1), (False, 1)]
    assert pairs[0].a == tmp_path / "Ann" / "Ann_0001.jpg" and pairs[1].b == tmp_path / "Cid" / "Cid_0003.jpg"
    assert read_pairs(f, tmp_path) == pairs


def test_real_lfw_pairs_file(lfw_dir):
    pairs = read_lfw_pairs(lfw_dir / "pairs.txt", lfw_dir / "images")
    assert len(pairs) == 6000 and sum(p.same for p in pairs) == 3000
    sub = balanced_subset(pairs, 200)
    assert len(sub) == 200
    assert all(sum(1 for p in sub if p.fold == f and p.same) == 10 for f in range(10))
    assert balanced_subset(pairs, 200) == sub  # deterministic


def test_tsv_pairs_and_errors(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("# comment\na.jpg\tb.jpg\t1\t0\nc.jpg\td.jpg\t0\t3\n")
    pairs = read_pairs(f, tmp_path)
    assert [(p.same, p.fold) for p in pairs] == [(True, 0), (False, 3)]
    f.write_text("a.jpg\tb.jpg\tyes\t0\n")
    with pytest.raises(DatasetError, match="p.tsv:1"):
        read_tsv_pairs(f, tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        read_pairs(tmp_path / "none.txt", tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("10\t300\nAnn\t1\t2\n")
    with pytest.raises(DatasetError, match="expected 6000"):
        read_lfw_pairs(bad, tmp_path)


def test_gt_txt_parsing_handles_images_without_faces(tmp_path):
    f = tmp_path / "gt.txt"
    f.write_text("a/1.jpg\n2\n10 10 20 20 0 0 0 0 0 0\n50 50 5 5 0 0 0 0 0 0\nb/2.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n"
                 "c/3.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n")
    gt = read_gt_txt(f)
    assert gt["a/1.jpg"].shape == (2, 4) and gt["b/2.jpg"].shape == (0, 4)
    np.testing.assert_array_equal(gt["c/3.jpg"], [[1, 2, 3, 4]])


def _gt(boxes, keep):
    b = np.array(boxes, float)
    return GroundTruth("e/x.jpg", b, {s: np.array(keep) for s in ("easy", "medium", "hard")})


def test_perfect_detections_give_ap_one_and_none_give_zero():
    gt = _gt([[10, 10, 40, 40], [100, 100, 30, 30]], [0, 1])
    preds = {"e/x.jpg": np.array([[10, 10, 40, 40, 0.9], [100, 100, 30, 30, 0.8]])}
    assert wider_ap(preds, [gt])["easy"]["ap"] == pytest.approx(1.0, abs=2e-3)
    assert wider_ap({"e/x.jpg": np.zeros((0, 5))}, [gt])["easy"]["ap"] == 0.0


def test_ignored_faces_are_neither_hits_nor_false_positives():
    # face 1 does not count in this subset: detecting it must not lower precision or raise recall
    gt = _gt([[10, 10, 40, 40], [100, 100, 30, 30]], [0])
    preds = {"e/x.jpg": np.array([[100, 100, 30, 30, 0.95], [10, 10, 40, 40, 0.9]])}
    assert wider_ap(preds, [gt])["easy"]["ap"] == pytest.approx(1.0, abs=2e-3)


def test_false_positive_halves_precision_at_full_recall():
    gt = _gt([[10, 10, 40, 40]], [0])
    pred = np.array([[200, 200, 20, 20, 1.0], [10, 10, 40, 40, 0.5]])
    pr = image_pr(pred, gt.boxes, gt.keep["easy"])
    assert tuple(pr[-1]) == (2, 1)  # lowest threshold: 2 proposals, 1 face recalled
    assert wider_ap({"e/x.jpg": pred}, [gt])["easy"]["ap"] == pytest.approx(0.5, abs=2e-3)
