"""Verification and detection metrics on score arrays (higher score = more likely same person).

Pure numpy so they can be tested against hand-computed answers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roc:
    """ROC points sorted by decreasing threshold (accept when score >= threshold)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def roc_curve(scores: np.ndarray, same: np.ndarray) -> Roc:
    """Exact ROC over all distinct thresholds, starting at (0, 0)."""
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both same-person and different-person pairs")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    return Roc(fpr=np.r_[0.0, fp / n_neg], tpr=np.r_[0.0, tp / n_pos], thresholds=np.r_[np.inf, s[distinct]])


def auc(roc: Roc) -> float:
    return float(np.trapezoid(roc.tpr, roc.fpr))


def eer(roc: Roc) -> float:
    """Equal error rate: where false accepts equal false rejects (linear interpolation)."""
    fnr = 1.0 - roc.tpr
    diff = roc.fpr - fnr
    idx = int(np.nonzero(diff >= 0)[0][0])
    if idx == 0:
        return float(roc.fpr[0])
    d0, d1 = diff[idx - 1], diff[idx]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(roc.fpr[idx - 1] + t * (roc.fpr[idx] - roc.fpr[idx - 1]))


def tar_at_far(roc: Roc, far: float) -> float:
    """True accept rate at the largest operating point whose false accept rate is <= far."""
    ok = roc.fpr <= far + 1e-12
    return float(roc.tpr[ok].max())


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Threshold (accept score >= t) that maximises accuracy on these pairs, and that accuracy.

    Ties are broken towards the middle of the best plateau, so the threshold sits between the
    nearest scores rather than on one of them.
    """
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    cand = np.unique(scores)
    mids = np.r_[cand[0] - 1e-6, (cand[:-1] + cand[1:]) / 2, cand[-1] + 1e-6]
    order = np.sort(scores)
    # accuracy(t) = (#same with score >= t + #diff with score < t) / n, evaluated for every mid
    pos_sorted = np.sort(scores[same])
    neg_sorted = np.sort(scores[~same])
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, mids, side="left")
    tn = np.searchsorted(neg_sorted, mids, side="left")
    acc = (tp + tn) / len(order)
    best = np.flatnonzero(acc == acc.max())
    pick = best[len(best) // 2]
    return float(mids[pick]), float(acc[pick])


@dataclass(frozen=True)
class KFoldResult:
    accuracies: np.ndarray
    thresholds: np.ndarray

    @property
    def mean(self) -> float:
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        return float(self.accuracies.std())


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """LFW View 2 protocol: for each fold, the threshold is chosen on the other folds and the
    accuracy is measured on this one."""
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    folds = np.asarray(folds)
    accs, ths = [], []
    for f in np.unique(folds):
        test = folds == f
        t, _ = best_threshold(scores[~test], same[~test])
        pred = scores[test] >= t
        accs.append(float((pred == same[test]).mean()))
        ths.append(t)
    return KFoldResult(np.array(accs), np.array(ths))


def verification_summary(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """All verification numbers facegate reports for a set of scored pairs."""
    roc = roc_curve(scores, same)
    kf = kfold_accuracy(scores, same, folds)
    n_neg = int((~np.asarray(same, bool)).sum())
    out = {
        "pairs": int(len(scores)),
        "same_pairs": int(np.sum(same)),
        "folds": int(len(np.unique(folds))),
        "accuracy_mean": kf.mean,
        "accuracy_std": kf.std,
        "fold_accuracies": [round(a, 5) for a in kf.accuracies.tolist()],
        "fold_thresholds": [round(t, 5) for t in kf.thresholds.tolist()],
        "roc_auc": auc(roc),
        "eer": eer(roc),
    }
    for far in (1e-2, 1e-3):
        key = f"tar_at_far_{far:.0e}".replace("-0", "-")
        # a FAR below 1/negatives cannot be measured: say so rather than report a number
        out[key] = tar_at_far(roc, far) if far * n_neg >= 1 else None
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (VOC / WIDER FACE AP)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
