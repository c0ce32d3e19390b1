"""Writing evaluation results: JSON (machine), markdown (people) and PNG plots (people who look)."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def write_outputs(out_dir: Path, stem: str, result: dict, markdown: str) -> list[Path]:
    """Write <stem>.json and <stem>.md atomically into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in ((".json", json.dumps(_jsonable(result), indent=2) + "\n"), (".md", markdown)):
        path = out_dir / f"{stem}{suffix}"
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(text)
        os.replace(tmp, path)
        written.append(path)
    return written


def pyplot():
    """matplotlib's pyplot on the Agg backend: plots are written to files, on machines without a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_roc_det(fpr: np.ndarray, tpr: np.ndarray, title: str, path: Path) -> Path:
    """ROC (log FAR axis) and DET (FAR vs FRR, log-log) side by side."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    far = np.clip(fpr, 1e-5, 1)
    ax1.semilogx(far, tpr, lw=2)
    ax1.set(xlabel="false accept rate", ylabel="true accept rate", title=f"ROC — {title}", xlim=(1e-4, 1),
            ylim=(0.5, 1.0))
    ax1.grid(True, which="both", alpha=0.3)
    frr = np.clip(1 - tpr, 1e-5, 1)
    ax2.loglog(far, frr, lw=2, color="tab:red")
    ax2.set(xlabel="false accept rate", ylabel="false reject rate", title=f"DET — {title}", xlim=(1e-4, 1),
            ylim=(1e-4, 1))
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_score_histogram(scores: np.ndarray, same: np.ndarray, threshold: float, title: str, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(min(scores.min(), -0.2), 1.0, 60)
    ax.hist(scores[same], bins=bins, alpha=0.6, label="same person")
    ax.hist(scores[~same], bins=bins, alpha=0.6, label="different people")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="cosine similarity", ylabel="pairs", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pr(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str, path: Path) -> Path:
    """Precision-recall curves, one per subset (name -> (recall, precision, ap))."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (rec, prec, ap) in curves.items():
        ax.plot(rec, prec, lw=2, label=f"{name} AP={ap:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_detector_time(rows: list[dict], path: Path, mode: str = "chained") -> Path | None:
    """Stacked bars per detector set / format / threads: time in P-Net, R-Net, O-Net and the shared
    cascade work, for the full-frame (`mode="full"`) or chained pyramid. Shows at a glance how much
    of a frame any student can win. None (with a warning) where matplotlib is not installed."""
    try:
        plt = pyplot()
    except ImportError:
        log.warning("matplotlib missing (pip install 'facegate[convert]'): no plot written")
        return None
    total_key = "chained_pyramid_ms" if mode == "chained" else "full_ms"
    labels = [f"{r['detector']} {r['format']} {r['threads'] or 'default'}t" for r in rows]
    parts = {"P-Net": [r[f"{mode}_pnet_ms"] for r in rows], "R-Net": [r[f"{mode}_rnet_ms"] for r in rows],
             "O-Net": [r[f"{mode}_onet_ms"] for r in rows],
             "shared cascade work": [max(0.0, r[total_key] - r[f"{mode}_nets_ms"]) for r in rows]}
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    left = np.zeros(len(rows))
    for (name, values), colour in zip(parts.items(), ("#4c72b0", "#55a868", "#c44e52", "#999999")):
        ax.barh(labels, values, left=left, label=name, color=colour)
        left += np.asarray(values)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms per 640x480 frame ({'chained' if mode == 'chained' else 'full-frame'} pyramid, median)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.5 / len(rows)), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
