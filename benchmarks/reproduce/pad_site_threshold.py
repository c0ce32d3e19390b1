"""Would a per-site liveness threshold close the leave-one-source-out gap?

After `facegate eval pad --protocol leave-one-source-out --out DIR`, this reuses DIR/work/without-<source>/
(the nets fine-tuned without each source) and models a site that records its own people at install:
the held-out source's subjects are split in two halves (by subject, as everywhere in pad_dev); the
threshold is set at BPCER 5% on the first half's live images only (a site has no attacks to record),
and every number is measured on the second half. The same for the pretrained MiniFASNet pair.

    python benchmarks/reproduce/pad_site_threshold.py DIR [--pad-dir ../shared/datasets/pad_dev]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from facegate.convert.evaluate.pad import judge, open_loso_run
    from facegate.convert.pad.data import subject_split
    from facegate.convert.pad.metrics import threshold_at_bpcer
    from facegate.convert.pad.scorers import PadScorer, fused_scores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("loso_out", type=Path, help="the --out folder of an `eval pad --protocol leave-one-source-out` run")
    ap.add_argument("--pad-dir", type=Path, default=None)
    ap.add_argument("--bpcer", type=float, default=0.05)
    args = ap.parse_args()
    run = open_loso_run(args.loso_out, args.pad_dir)
    samples, images, boxes, published = run.samples, run.images, run.boxes, run.published
    print("| held-out source | model | site threshold | ACER | BPCER | APCER worst | live / attacks judged |")
    print("|---|---|---|---|---|---|---|")
    means: dict[str, list[float]] = {}
    for source in sorted({s.source for s in samples}):
        test, calib = subject_split([s for s in samples if s.source == source], val_fraction=0.5)
        live_calib = np.array([s.live for s in calib])
        for name, models in (("fine-tuned without it", run.fold_nets(source)), ("pretrained", published)):
            on_calib = fused_scores(models, images, calib, boxes)
            t = threshold_at_bpcer(on_calib[live_calib & ~np.isnan(on_calib)], args.bpcer)
            m = judge(PadScorer(name, t, "site", None), fused_scores(models, images, test, boxes), test)
            means.setdefault(name, []).append(m["acer"])
            print(f"| {source} | {name} | {t:.3f} | {100 * m['acer']:.1f}% | {100 * m['bpcer']:.1f}% | "
                  f"{100 * m['apcer_worst']:.1f}% | {m['live']} / {m['attacks']} |")
    for name, acers in means.items():
        print(f"mean ACER, {name}: {100 * np.mean(acers):.1f}%")


if __name__ == "__main__":
    main()
