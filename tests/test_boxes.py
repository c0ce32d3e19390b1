"""Box geometry used by the cascade."""
import numpy as np
import pytest

from facegate.edge.detect.boxes import (
    apply_regression,
    clip_to_image,
    crop_and_resize,
    nms,
    pairwise_overlap,
    to_square,
)


def test_overlap_union_and_min():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 5, 5]], float)
    np.testing.assert_allclose(pairwise_overlap(a, b, "union"), [[50 / 150, 25 / 100]])
    np.testing.assert_allclose(pairwise_overlap(a, b, "min"), [[0.5, 1.0]])


def test_nms_suppresses_against_every_earlier_box():
    # B overlaps A strongly; C overlaps B (not A). The reference rule drops C too, because an
    # earlier box (B, even though suppressed) overlaps it: greedy NMS would keep C.
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10], [7, 0, 17, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.4).tolist() == [0, 3]


def test_nms_sorts_by_score_and_chunks_consistently():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (600, 2))
    boxes = np.c_[xy, xy + rng.uniform(10, 40, (600, 2))]
    scores = rng.uniform(size=600)
    a = nms(boxes, scores, 0.5, chunk=1024)
    b = nms(boxes, scores, 0.5, chunk=37)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(scores[a]) <= 0)


def test_to_square_keeps_centre():
    sq = to_square(np.array([[10, 20, 30, 60]], float))
    np.testing.assert_allclose(sq, [[0, 20, 40, 60]])


def test_apply_regression_uses_plus_one_sizes():
    out = apply_regression(np.array([[0, 0, 9, 19]], float), np.array([[0.1, 0.1, -0.1, 0.0]]))
    np.testing.assert_allclose(out, [[1, 2, 8, 19]])


def test_crop_and_resize_samples_corners_and_pads_with_zero():
    yy, xx = np.mgrid[0:50, 0:80].astype(np.float32)
    image = np.stack([xx, yy, xx + yy], axis=2)
    crop = crop_and_resize(image, np.array([[10, 5, 30, 25]], float), 11)[0]
    # normalised coordinates x/W mapped back with (W-1): corners at 10*79/80 and 30*79/80
    assert crop[0, 0, 0] == pytest.approx(10 * 79 / 80, abs=1e-4)
    assert crop[-1, -1, 0] == pytest.approx(30 * 79 / 80, abs=1e-4)
    assert crop[0, 0, 1] == pytest.approx(5 * 49 / 50, abs=1e-4)
    outside = crop_and_resize(image, np.array([[-40, -40, -10, -10]], float), 8)
    assert np.all(outside == 0)


def test_clip_to_image():
    out = clip_to_image(np.array([[-5, -3, 120, 90]], float), 100, 80)
    np.testing.assert_allclose(out, [[0, 0, 99, 79]])


def test_greedy_nms_keeps_boxes_only_suppressed_by_suppressed_boxes():
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10], [7, 0, 17, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.4, mode="greedy").tolist() == [0, 2, 3]
    with pytest.raises(ValueError):
        nms(boxes, scores, 0.4, mode="fast")
