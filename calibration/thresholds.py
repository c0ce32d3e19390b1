"""Decision thresholds for target false accept rates, from scored pairs.

The edge runtime reads thresholds only from model cards; this module computes them. A threshold
for FAR f is set just above the k-th highest impostor score (k = floor(f * impostors)), so the
measured FAR never exceeds f. A FAR is only calibrated when the impostor count gives at least
`min_false_accepts` expected false accepts at that rate; otherwise the estimate is noise.
"""
from __future__ import annotations

import numpy as np

DEFAULT_FARS = (1e-2, 1e-3, 1e-4)


def far_key(far: float) -> str:
    return f"{far:.0e}".replace("e-0", "e-")


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    neg = np.sort(np.asarray(impostor, np.float64))[::-1]
    k = int(np.floor(far * len(neg)))
    if k >= len(neg):
        return float(neg[-1])
    return float(np.nextafter(neg[k], np.inf))


def calibrate(genuine: np.ndarray, impostor: np.ndarray, fars=DEFAULT_FARS, min_false_accepts: int = 10) -> dict:
    """{far_key: {"threshold", "tar", "far_measured"}} for every FAR the data supports."""
    genuine = np.asarray(genuine, np.float64)
    impostor = np.asarray(impostor, np.float64)
    out = {}
    for far in fars:
        if far * len(impostor) < min_false_accepts:
            continue
        t = threshold_at_far(impostor, far)
        out[far_key(far)] = {"threshold": round(t, 6), "tar": round(float(np.mean(genuine >= t)), 5),
                             "far_measured": float(np.mean(impostor >= t))}
    return out


def identity_pair_scores(vectors: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of all same-identity (genuine) and different-identity (impostor) pairs."""
    v = np.asarray(vectors, np.float32)
    lab = np.asarray(labels)
    sims = v @ v.T
    iu = np.triu_indices(len(v), k=1)
    same = lab[iu[0]] == lab[iu[1]]
    scores = sims[iu]
    return scores[same], scores[~same]
