"""Metric functions on score arrays whose answers are known by hand."""
import numpy as np
import pytest

from facegate.convert.evaluate.metrics import (
    auc,
    best_threshold,
    eer,
    kfold_accuracy,
    roc_curve,
    tar_at_far,
    verification_summary,
    voc_ap,
)


def test_perfect_separation():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    roc = roc_curve(scores, same)
    assert auc(roc) == pytest.approx(1.0)
    assert eer(roc) == pytest.approx(0.0)
    assert tar_at_far(roc, 0.0) == pytest.approx(1.0)
    t, acc = best_threshold(scores, same)
    assert acc == 1.0 and 0.3 < t <= 0.7


def test_known_roc_points():
    # positives 0.9, 0.6 ; negatives 0.8, 0.1
    scores = np.array([0.9, 0.8, 0.6, 0.1])
    same = np.array([1, 0, 1, 0], bool)
    roc = roc_curve(scores, same)
    np.testing.assert_allclose(roc.fpr, [0, 0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(roc.tpr, [0, 0.5, 0.5, 1.0, 1.0])
    assert auc(roc) == pytest.approx(0.75)
    assert eer(roc) == pytest.approx(0.5)
    assert tar_at_far(roc, 0.0) == pytest.approx(0.5)
    assert tar_at_far(roc, 0.5) == pytest.approx(1.0)


def test_reversed_scores_give_zero_auc():
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    same = np.array([1, 1, 0, 0], bool)
    assert auc(roc_curve(scores, same)) == pytest.approx(0.0)


def test_kfold_uses_threshold_from_other_folds():
    # fold 0 alone would prefer a threshold of ~0.45, the other folds ~0.75: fold 0 is scored with theirs
    scores = np.array([0.5, 0.4, 0.9, 0.6, 0.9, 0.6])
    same = np.array([1, 0, 1, 0, 1, 0], bool)
    folds = np.array([0, 0, 1, 1, 2, 2])
    kf = kfold_accuracy(scores, same, folds)
    np.testing.assert_allclose(kf.accuracies, [0.5, 1.0, 1.0])
    assert kf.thresholds[0] == pytest.approx(0.75)


def test_summary_marks_unmeasurable_far():
    rng = np.random.default_rng(0)
    same = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    scores = np.r_[rng.normal(0.7, 0.1, 200), rng.normal(0.1, 0.1, 200)]
    s = verification_summary(scores, same, np.arange(400) % 10)
    assert s["tar_at_far_1e-2"] is not None  # 200 negatives: 2 false accepts at 1e-2
    assert s["tar_at_far_1e-3"] is None  # 200 negatives cannot measure a 1e-3 FAR
    assert 0.95 < s["accuracy_mean"] <= 1.0


def test_voc_ap_simple_curves():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    assert voc_ap(np.array([0.5, 0.5]), np.array([1.0, 0.5])) == pytest.approx(0.5)
    # precision envelope: a later higher precision lifts the earlier recall step
    assert voc_ap(np.array([0.25, 0.5]), np.array([0.5, 1.0])) == pytest.approx(0.5)
