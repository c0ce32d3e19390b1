"""The training loop pieces the embedder distillers share: one epoch of steps behind a progress bar,
and the log (one CSV row per epoch, rewritten whole so new columns — a loss term switched on later,
a resumed run — line up with the old rows)."""
from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)


def run_epoch(step: Callable[[object], dict], batches: Iterable, total: int, desc: str, progress: bool) -> dict:
    """Feed every batch to `step` (which returns its loss terms as floats, one of them 'total') and
    return the epoch's row: each term's mean as loss_<term>, and the seconds it took."""
    sums: dict[str, float] = {}
    n, t0 = 0, time.time()
    bar = tqdm(batches, total=total, desc=desc, unit="batch", disable=not progress)
    for n, batch in enumerate(bar, 1):
        for k, v in step(batch).items():
            sums[k] = sums.get(k, 0.0) + float(v)
        bar.set_postfix(loss=f"{sums['total'] / n:.4f}")
    return {**{f"loss_{k}": round(v / max(n, 1), 5) for k, v in sums.items()}, "seconds": round(time.time() - t0, 1)}


def append_csv_row(path: Path, row: dict) -> None:
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    rows.append({k: str(v) for k, v in row.items()})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


class EpochBook:
    """What a trainer does after each epoch: checkpoint, log row, best student so far (by
    `score_key`, else the lowest training loss), loss plot, and the time budget of `--max-minutes`."""

    def __init__(self, out: Path, score_key: str, save_best: Callable[[Path, dict], None], resume: bool = True,
                 max_minutes: float | None = None) -> None:
        self.out, self.score_key, self.save_best, self.max_minutes = out, score_key, save_best, max_minutes
        self.state_path, self.log_path = out / "best.json", out / "log.csv"
        self.best: dict = json.loads(self.state_path.read_text()) if resume and self.state_path.exists() else {}
        self.best_score = self.best.get("score", self.best.get(score_key, -math.inf))
        self.last: dict = {}
        self.start = time.time()

    def keep(self, row: dict, score: float) -> None:
        """Save `row`'s model as the best student and remember it."""
        self.best_score, self.best = score, {"score": score, **row}
        self.save_best(self.out / "student.keras", row)
        self.state_path.write_text(json.dumps(self.best, indent=2))

    def close_epoch(self, row: dict, checkpoints, more_to_do: bool) -> bool:
        """Record a finished epoch (its checkpoint already counted in `row['epoch']`); True when the
        time budget is spent and the run should stop (resumable from the checkpoint)."""
        checkpoints.save()
        append_csv_row(self.log_path, row)
        log.info("epoch %d: %s", row["epoch"], row)
        self.last = row
        score = row.get(self.score_key, -row["loss_total"])
        if score > self.best_score:
            self.keep(row, score)
        plot_log(self.log_path, self.out / "loss.png")
        if self.max_minutes and (time.time() - self.start) / 60 > self.max_minutes and more_to_do:
            log.info("stopping after %.1f minutes (checkpoint saved; run again to resume)", self.max_minutes)
            return True
        return False


def plot_log(log_path: Path, out: Path) -> None:
    """Loss terms and validation cosine per epoch, one PNG (people look at curves, not CSVs)."""
    from facegate.convert.evaluate.report import pyplot
    plt = pyplot()

    rows = list(csv.DictReader(log_path.open()))
    x_key = "epoch" if rows and "epoch" in rows[0] else "step"     # TF trainer: epochs; portable: steps
    rows = [r for r in rows if r.get(x_key)]
    if not rows:
        return
    ep = [int(r[x_key]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for k in rows[-1]:
        if k == "loss" or k.startswith("loss_"):
            a.plot(ep, [float(r.get(k) or math.nan) for r in rows], label=k[5:] or "total")
    a.set_yscale("log")
    a.set_xlabel(x_key)
    a.set_title("training losses")
    a.legend()
    for k in ("val_cosine_mean", "val_pair_accuracy", "val_teacher_pair_accuracy",   # distill embedder
              "val_source_cosine_mean", "val_source_pair_accuracy"):                 # distill compress
        if k in rows[-1]:
            b.plot(ep, [float(r.get(k) or math.nan) for r in rows], label=k[4:])
    b.set_xlabel(x_key)
    b.set_title("held-out identities")
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
