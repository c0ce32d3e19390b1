"""`facegate eval pad`: presentation attack detection measured the ISO/IEC 30107-3 way, the shipped
liveness set beside two baselines in the same run, on any labelled folder.

Faces come from facegate's own detector (the door's); an image without a face is a failure to acquire:
an attack there is refused, a live person there is refused too (counted in BPCER and reported).
Two protocols: ``card`` judges every scorer at its own threshold on the folder (or on pad_dev's
subject-disjoint validation split with ``--split val``: the people the shipped set never saw);
``leave-one-source-out`` fine-tunes on all sources but one and tests on that one, the number that
predicts a new site. Writes JSON (top-level ``acer``, ``bpcer``, ``apcer_worst`` at the card threshold,
fractions), markdown and PNG plots into the output folder.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.convert.evaluate.report import pyplot, write_outputs
from facegate.convert.pad.data import PadSample, face_boxes, subject_split
from facegate.convert.pad.metrics import pad_curves, pad_metrics
from facegate.convert.pad.scorers import PadScorer

log = logging.getLogger(__name__)


def judge(scorer: PadScorer, scores: np.ndarray, samples: list[PadSample], det: bool = False) -> dict:
    """Every number of one scorer on one set of samples (at its threshold, and threshold-free); with
    `det`, the DET points too (under "det", for the plot)."""
    live, attacks = np.array([s.live for s in samples]), [s.attack for s in samples]
    m = pad_metrics(scores, live, attacks, scorer.threshold)
    out = {"model": scorer.name, "threshold": round(float(scorer.threshold), 4),
           "threshold_source": scorer.threshold_source, "acer": m.get("acer"), "bpcer": m["bpcer"],
           "apcer_worst": m["apcer"], "apcer_per_type": m["apcer_per_type"], "live": m["live"],
           "attacks": m["attacks"], "no_face_live": m["no_face_live"], "no_face_attack": m["no_face_attack"]}
    if live.any() and (~live).any():
        curves = pad_curves(scores, live, attacks)
        out.update({k: v for k, v in curves.items() if det or k != "det"})
    return out


def per_source(scorer: PadScorer, scores: np.ndarray, samples: list[PadSample]) -> dict:
    out = {}
    for source in sorted({s.source for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.source == source]
        m = judge(scorer, scores[idx], [samples[i] for i in idx])
        out[source] = {k: m[k] for k in ("acer", "bpcer", "apcer_worst", "apcer_per_type", "live", "attacks")}
    return out


def pct(v: float | None) -> str:
    """A fraction as a percentage, 'n/a' where there is none (a set without live images has no BPCER)."""
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _row(r: dict) -> str:
    return (f"| {r['model']} | {r['threshold']:g} ({r['threshold_source']}) | {pct(r['acer'])} | "
            f"{pct(r['bpcer'])} | {pct(r['apcer_worst'])} | "
            + ", ".join(f"{k} {pct(v['apcer'])} of {v['n']}" for k, v in r["apcer_per_type"].items())
            + f" | {pct(r.get('bpcer_at_apcer_1pct'))} | {pct(r.get('bpcer_at_apcer_5pct'))} | "
            f"{r.get('auc', 'n/a')} | {pct(r.get('eer'))} |")


HEADER = ("| model | threshold | ACER | BPCER | APCER (worst type) | APCER per type | BPCER @ APCER 1% | "
          "BPCER @ APCER 5% | AUC | EER |\n|---|---|---|---|---|---|---|---|---|---|")


def plot_det(curves: dict[str, dict], title: str, path: Path) -> Path:
    """DET curves (APCER of all attacks vs BPCER) on normal-deviate axes, one line per scorer."""
    from scipy.stats import norm
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8])
    for name, det in curves.items():
        x = norm.ppf(np.clip(det["apcer"], 5e-4, 0.9995))
        y = norm.ppf(np.clip(det["bpcer"], 5e-4, 0.9995))
        ax.plot(x, y, lw=2, label=name)
    ax.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set(xlabel="APCER (all attacks)", ylabel="BPCER", title=f"DET — {title}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_histograms(rows: list[tuple[PadScorer, np.ndarray]], samples: list[PadSample], path: Path) -> Path:
    """Score histograms, live vs attack, one row per scorer and one column per source, threshold marked."""
    plt = pyplot()
    sources = sorted({s.source for s in samples})
    fig, axes = plt.subplots(len(rows), len(sources), figsize=(3.6 * len(sources), 2.4 * len(rows)), squeeze=False)
    for r, (scorer, scores) in enumerate(rows):
        lo, hi = float(np.nanmin(scores)) if np.isfinite(scores).any() else 0.0, 1.0
        bins = np.linspace(min(lo, scorer.threshold), hi, 31)
        for c, source in enumerate(sources):
            ax = axes[r][c]
            for live, colour, label in ((True, "tab:green", "live"), (False, "tab:red", "attack")):
                v = np.array([x for x, s in zip(scores, samples) if s.source == source and s.live == live])
                ax.hist(v[np.isfinite(v)], bins=bins, alpha=0.6, color=colour, label=label)
            ax.axvline(scorer.threshold, color="k", ls="--", lw=1)
            ax.set_title(f"{scorer.name} — {source}", fontsize=8)
            ax.tick_params(labelsize=7)
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def select_split(samples: list[PadSample], split: str) -> list[PadSample]:
    if split == "all":
        return samples
    train, val = subject_split(samples)
    return val if split == "val" else train


def evaluate_pad(samples: list[PadSample], scorers: list[PadScorer], detector, out: Path, title: str,
                 command: str, cache: Path | None = None, progress: bool = True) -> dict:
    """The card protocol: every scorer at its own threshold on `samples` (the first scorer is the
    headline; the others are reported under "baselines")."""
    from facegate.convert.pad.finetune import load_images
    boxes = face_boxes(samples, detector, cache, progress=progress)
    images = load_images(samples)
    rows = [(scorer, scorer.scores(images, samples, boxes)) for scorer in scorers]
    live = np.array([s.live for s in samples])
    judged = [judge(scorer, scores, samples, det=True) | {"per_source": per_source(scorer, scores, samples)}
              for scorer, scores in rows]
    curves = {r["model"]: r.pop("det") for r in judged if "det" in r}
    result = {"data": title, "images": len(samples), "images_without_face": sum(boxes.get(s.key) is None
                                                                                for s in samples),
              "detector": getattr(detector, "name", type(detector).__name__), **judged[0],
              "baselines": judged[1:], "command": command}
    out.mkdir(parents=True, exist_ok=True)
    plot_det(curves, title, out / "pad_det.png")
    plot_histograms(rows, samples, out / "pad_hist.png")
    md = [f"# Presentation attack detection — {title}", "", f"{len(samples)} images ({int(live.sum())} live, "
          f"{int((~live).sum())} attacks); no face found in {result['images_without_face']} "
          "(an attack there is refused, a live person there counts in BPCER).", "", HEADER]
    md += [_row(r) for r in judged]
    md += ["", "Per source (headline model):", "", "| source | live | attacks | ACER | BPCER | APCER (worst) |",
           "|---|---|---|---|---|---|"]
    md += [f"| {src} | {m['live']} | {m['attacks']} | {pct(m['acer'])} | {pct(m['bpcer'])} | "
           f"{pct(m['apcer_worst'])} |" for src, m in judged[0]["per_source"].items()]
    md += ["", "![DET](pad_det.png)", "", "![histograms](pad_hist.png)", "", f"`{command}`", ""]
    write_outputs(out, "pad", result, "\n".join(md))
    return result


def evaluate_pad_loso(samples: list[PadSample], weights_dir: Path, baselines: list[PadScorer], detector, out: Path,
                      title: str, command: str, epochs: int = 8, bpcer: float = 0.05, cfg=None,
                      cache: Path | None = None, progress: bool = True) -> dict:
    """The leave-one-source-out protocol; mean ACER over the held-out sources per scorer."""
    from facegate.convert.pad.finetune import load_images
    from facegate.convert.pad.train import leave_one_source_out
    boxes = face_boxes(samples, detector, cache, progress=progress)
    images = load_images(samples)
    folds = leave_one_source_out(samples, images, boxes, weights_dir, out / "work", baselines, epochs, bpcer, cfg)
    table: dict[str, dict] = {}
    for fold in folds:
        held = [s for s in samples if s.source == fold["source"]]
        for scorer, scores in fold["scorers"]:
            key = f"{scorer.name} @ {scorer.threshold_source}"
            table.setdefault(key, {"model": scorer.name, "threshold_source": scorer.threshold_source, "folds": {}})
            table[key]["folds"][fold["source"]] = judge(scorer, scores, held)
    def mean_of(entry: dict, key: str) -> float | None:
        """Mean over the folds; None unless every fold has the number (a source without live images has
        no BPCER, so no ACER: a mean over the others would not be a leave-one-source-out mean)."""
        values = [f[key] for f in entry["folds"].values()]
        return None if None in values else round(float(np.mean(values)), 4)

    for entry in table.values():
        for key in ("acer", "bpcer", "apcer_worst"):
            entry[f"mean_{key}"] = mean_of(entry, key)
    ours = next(iter(table.values()))
    result = {"data": title, "protocol": "leave-one-source-out", "images": len(samples), "epochs": epochs,
              "learning_rate": cfg.learning_rate if cfg else None, "train_layers": cfg.train_layers if cfg else None,
              "keep_pretrained": cfg.keep_pretrained if cfg else None,
              "synthetic_attacks": cfg.synthetic_attacks if cfg else None,
              "target_bpcer": bpcer, "acer": ours["mean_acer"], "bpcer": ours["mean_bpcer"],
              "apcer_worst": ours["mean_apcer_worst"], "scorers": list(table.values()), "command": command}
    sources = [f["source"] for f in folds]
    md = [f"# Presentation attack detection, leave one source out — {title}", "",
          f"Each source held out in turn; ours fine-tuned {epochs} epochs on the others. Thresholds "
          f"'{ours['threshold_source']}' unless the row names the model's own rule.", "",
          "| model | threshold | " + " | ".join(f"{s}: ACER (BPCER / APCER worst)" for s in sources)
          + " | mean ACER |", "|---|---|" + "---|" * len(sources) + "---|"]
    for e in table.values():
        cells = [f"{pct(e['folds'][s]['acer'])} ({pct(e['folds'][s]['bpcer'])} / "
                 f"{pct(e['folds'][s]['apcer_worst'])})" for s in sources]
        md.append(f"| {e['model']} | {e['threshold_source']} | " + " | ".join(cells) + f" | {pct(e['mean_acer'])} |")
    md += ["", f"`{command}`", ""]
    write_outputs(out, "pad_loso", result, "\n".join(md))
    return result


@dataclass
class LosoRun:
    """A finished leave-one-source-out run, reopened for a follow-up study (benchmarks/reproduce/pad_*.py):
    pad_dev's samples, images and the run's own face boxes, the published nets, and each fold's nets."""
    out: Path
    samples: list[PadSample]
    images: dict
    boxes: dict
    published: dict          # {name: (Keras model, crop scale)}

    def fold_nets(self, source: str) -> dict:
        """The nets the run fine-tuned without `source`: {name: (Keras model, crop scale)}."""
        import keras
        work = self.out / "work" / f"without-{source}"
        return {n: (keras.models.load_model(work / f"{n}.keras", compile=False), scale)
                for n, (_, scale) in self.published.items()}


def open_loso_run(out: Path, pad_dir: Path | None = None) -> LosoRun:
    from facegate.convert.datasets import shared_datasets
    from facegate.convert.pad.data import boxes_cache, load_pad_dev
    from facegate.convert.pad.finetune import load_images
    from facegate.convert.pad.minifasnet import pretrained
    from facegate.convert.pad.train import NETS
    from facegate.edge.registry import load_detector
    weights = shared_datasets().parent / "pretrained" / "minifasnet"
    samples = load_pad_dev(pad_dir or shared_datasets() / "pad_dev")
    detector = load_detector()
    boxes = face_boxes(samples, detector, boxes_cache(out, detector))       # the run's own, when it has them
    return LosoRun(out, samples, load_images(samples), boxes, {n: pretrained(n, weights) for n in NETS})
