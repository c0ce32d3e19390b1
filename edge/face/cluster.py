"""Clustering unknown faces for review (who keeps showing up at the door without being enrolled?).

DBSCAN on cosine distance finds the recurring strangers without being told how many there are
(noise stays unlabelled, -1); k-means++ (spherical, on unit vectors) when the number is known.
Both in numpy: a board can run them on its captured strangers without extra packages.
"""
from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-10)


def dbscan_cosine(x: np.ndarray, eps: float = 0.5, min_samples: int = 2) -> np.ndarray:
    """Labels 0..k-1 per embedding, -1 for noise. Neighbours: cosine distance (1 - cos) <= eps."""
    x = _unit(x)
    n = len(x)
    neighbours = (1.0 - x @ x.T) <= eps
    core = neighbours.sum(axis=1) >= min_samples
    labels = np.full(n, -1, np.int64)
    cluster = 0
    for i in range(n):
        if labels[i] != -1 or not core[i]:
            continue
        labels[i] = cluster
        frontier = [i]
        while frontier:
            j = frontier.pop()
            if not core[j]:
                continue
            for k in np.flatnonzero(neighbours[j] & (labels == -1)):
                labels[k] = cluster
                frontier.append(int(k))
        cluster += 1
    return labels


def kmeans_pp(x: np.ndarray, k: int, iterations: int = 50, seed: int = 0, restarts: int = 10) -> np.ndarray:
    """Spherical k-means with k-means++ seeding; returns labels 0..k-1.

    One seeding can merge two people and split a third (a local optimum); like mature k-means
    implementations, several seedings run and the tightest clustering (highest total cosine to
    its centre) wins, so grouping does not hinge on one random draw."""
    x = _unit(x)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be between 1 and the number of faces ({len(x)}), got {k}")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    best, best_fit = None, -np.inf
    for r in range(restarts):
        labels, fit = _kmeans_once(x, k, iterations, np.random.default_rng(seed + r))
        if fit > best_fit + 1e-9:
            best, best_fit = labels, fit
    return best


def _kmeans_once(x: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(1.0 - x @ np.stack(centres).T, axis=1).clip(min=0) ** 2
        p = d / d.sum() if d.sum() > 0 else np.full(len(x), 1 / len(x))
        centres.append(x[rng.choice(len(x), p=p)])
    c = np.stack(centres)
    labels = np.zeros(len(x), np.int64)
    for _ in range(iterations):
        new = np.argmax(x @ c.T, axis=1)
        if np.array_equal(new, labels) and _ > 0:
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = _unit(members.sum(axis=0, keepdims=True))[0]
    return labels, float(np.sum(x * c[labels]))
