"""A linear SVM for closed sets (the 5-celebrity tutorial's classifier), in numpy.

One-vs-rest, squared hinge loss with L2 regularisation, fitted by full-batch L-BFGS-free gradient
descent with backtracking: embeddings are few and low-dimensional, so this converges in
milliseconds and needs no scikit-learn on a board.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facegate.edge.errors import FacegateError


class LinearSVM:
    """fit(X, labels) / predict(X) / decision_function(X) on unit-length embeddings."""

    def __init__(self, C: float = 1.0, iterations: int = 500) -> None:
        self.C = C
        self.iterations = iterations
        self.classes_: list[str] = []
        self.coef_ = np.zeros((0, 0), np.float32)
        self.intercept_ = np.zeros(0, np.float32)

    def fit(self, x: np.ndarray, labels: list[str]) -> "LinearSVM":
        x = np.asarray(x, np.float64)
        self.classes_ = sorted(set(labels))
        if len(self.classes_) < 2:
            raise FacegateError("a classifier needs at least two people")
        y = np.where(np.asarray(labels)[:, None] == np.array(self.classes_)[None, :], 1.0, -1.0)  # (n, k)
        xb = np.hstack([x, np.ones((len(x), 1))])  # bias as a feature (not regularised below)
        w = np.zeros((xb.shape[1], len(self.classes_)))
        reg = np.ones(xb.shape[1])
        reg[-1] = 0.0

        def loss_grad(w):
            margin = np.maximum(0.0, 1.0 - y * (xb @ w))
            loss = 0.5 * np.sum(reg[:, None] * w * w) + self.C * np.sum(margin ** 2)
            grad = reg[:, None] * w - 2.0 * self.C * xb.T @ (y * margin)
            return loss, grad

        step = 1.0
        loss, grad = loss_grad(w)
        for _ in range(self.iterations):
            while True:  # backtracking line search keeps every step a descent step
                cand = w - step * grad
                cand_loss, cand_grad = loss_grad(cand)
                if cand_loss <= loss - 0.5 * step * np.sum(grad * grad) or step < 1e-10:
                    break
                step *= 0.5
            if loss - cand_loss < 1e-10 * max(1.0, loss):
                w = cand
                break
            w, loss, grad = cand, cand_loss, cand_grad
            step *= 1.5
        self.coef_ = w[:-1].T.astype(np.float32)
        self.intercept_ = w[-1].astype(np.float32)
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) @ self.coef_.T + self.intercept_

    def predict(self, x: np.ndarray) -> list[str]:
        return [self.classes_[i] for i in np.argmax(self.decision_function(x), axis=1)]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"classes": self.classes_, "coef": self.coef_.tolist(),
                                          "intercept": self.intercept_.tolist(), "C": self.C}))

    @classmethod
    def load(cls, path: str | Path) -> "LinearSVM":
        d = json.loads(Path(path).read_text())
        m = cls(C=d["C"])
        m.classes_, m.coef_, m.intercept_ = d["classes"], np.array(d["coef"], np.float32), np.array(d["intercept"], np.float32)
        return m
