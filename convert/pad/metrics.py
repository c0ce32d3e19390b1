"""ISO/IEC 30107-3 presentation attack detection metrics.

APCER (per attack type: the share of attack presentations accepted as live; the headline APCER is the
worst type), BPCER (the share of live presentations called attacks), ACER (their mean, a popular
summary the standard itself does not endorse), and the threshold that gives a target BPCER. A sample
where no face was found is a failure to acquire: an attack without a face cannot open the door (counted
as refused), a live person without one is refused too (counted in BPCER, and reported separately).
"""
from __future__ import annotations

import numpy as np


def threshold_at_bpcer(live_scores: np.ndarray, target: float) -> float:
    """The highest threshold that refuses at most `target` of the live scores (score >= t is live)."""
    live_scores = np.sort(np.asarray(live_scores, np.float64))
    if not len(live_scores):
        raise ValueError("no live scores")
    k = int(np.floor(target * len(live_scores)))          # this many may fall below the threshold
    return float(live_scores[min(k, len(live_scores) - 1)])


def card_threshold(threshold: float, digits: int = 4) -> float:
    """`threshold` as written into a card or door.toml: rounded *down* to `digits` decimals, so every face
    the chosen threshold accepts is still accepted (rounding to nearest can lift it above the very live
    score it was set at: 0.959275 became 0.9593 and refused that person)."""
    scale = 10 ** digits
    return float(np.floor(np.float64(threshold) * scale + 1e-9) / scale)


def pad_metrics(scores: np.ndarray, live: np.ndarray, attacks: list[str], threshold: float) -> dict:
    """APCER per attack type and overall (max), BPCER, ACER at `threshold`; NaN scores = no face."""
    scores, live = np.asarray(scores, np.float64), np.asarray(live, bool)
    accepted = np.nan_to_num(scores, nan=-1.0) >= threshold
    out = {"threshold": round(float(threshold), 4), "live": int(live.sum()), "attacks": int((~live).sum()),
           "no_face_live": int(np.isnan(scores[live]).sum()), "no_face_attack": int(np.isnan(scores[~live]).sum())}
    out["bpcer"] = round(float((~accepted[live]).mean()), 4) if live.any() else None
    per_type = {}
    for kind in sorted({a for a, is_live in zip(attacks, live) if not is_live}):
        sel = np.array([a == kind for a in attacks]) & ~live
        per_type[kind] = {"n": int(sel.sum()), "apcer": round(float(accepted[sel].mean()), 4)}
    out["apcer_per_type"] = per_type
    out["apcer"] = max((v["apcer"] for v in per_type.values()), default=None)
    if out["apcer"] is not None and out["bpcer"] is not None:
        out["acer"] = round((out["apcer"] + out["bpcer"]) / 2, 4)
    return out


def threshold_at_apcer(scores: np.ndarray, live: np.ndarray, attacks: list[str], target: float) -> float:
    """The lowest threshold at which no attack type is accepted more often than `target` (score >= t
    is live; NaN = no face, never accepted). ISO/IEC 30107-3's BPCER at a fixed APCER uses it."""
    scores, live = np.asarray(scores, np.float64), np.asarray(live, bool)
    needed = -np.inf
    for kind in sorted({a for a, is_live in zip(attacks, live) if not is_live}):
        sel = np.array([a == kind for a in attacks]) & ~live
        a = np.sort(scores[sel][np.isfinite(scores[sel])])[::-1]      # faces found, highest first
        allowed = int(np.floor(target * sel.sum()))                    # this many may be accepted
        if allowed < len(a):
            needed = max(needed, float(np.nextafter(a[allowed], np.inf)))
    return needed


def pad_curves(scores: np.ndarray, live: np.ndarray, attacks: list[str]) -> dict:
    """Threshold-free numbers: AUC and EER (live vs every attack), BPCER at APCER (worst type) 1% and 5%,
    and the DET points (APCER of all attacks, BPCER). A sample without a face is refused at any
    threshold, so it sits below every score."""
    from facegate.convert.evaluate.metrics import auc, eer, roc_curve
    scores, live = np.asarray(scores, np.float64), np.asarray(live, bool)
    floor = float(np.nanmin(scores)) - 1.0 if np.isfinite(scores).any() else 0.0
    ranked = np.where(np.isnan(scores), floor, scores)          # ties among them stay ties
    roc = roc_curve(ranked, live)
    out = {"auc": round(auc(roc), 4), "eer": round(eer(roc), 4)}
    for target, key in ((0.01, "bpcer_at_apcer_1pct"), (0.05, "bpcer_at_apcer_5pct")):
        t = threshold_at_apcer(scores, live, attacks, target)
        accepted = np.isfinite(scores[live]) & (scores[live] >= t)
        out[key] = round(float(1 - accepted.mean()), 4)
    points = np.isfinite(roc.thresholds) & (roc.thresholds > floor)      # "accept everything" is not a threshold
    out["det"] = {"apcer": np.round(roc.fpr[points], 5).tolist(), "bpcer": np.round(1 - roc.tpr[points], 5).tolist()}
    return out
