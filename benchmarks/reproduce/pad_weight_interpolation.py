"""Do nets part-way between the published and the fine-tuned weights do better on an unseen source?

Weight-space interpolation (WiSE-FT, Wortsman et al. 2022) keeps much of a pretrained net's robustness
to a new domain while taking some of what fine-tuning learnt. After `facegate eval pad --protocol
leave-one-source-out --out DIR`, this reuses DIR/work/without-<source>/ (the nets fine-tuned without each
source): for each alpha, every weight (batch-norm statistics included) is (1 - alpha) * published +
alpha * fine-tuned, the threshold is set at BPCER 5% on the other sources' validation split (as the
protocol sets ours), and the held-out source is judged. alpha 0 is the published pair, 1 the run's nets.

    python benchmarks/reproduce/pad_weight_interpolation.py DIR [--alphas 0,0.25,0.5,0.75,1]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    import keras

    from facegate.convert.evaluate.pad import judge, open_loso_run
    from facegate.convert.pad.data import subject_split
    from facegate.convert.pad.metrics import threshold_at_bpcer
    from facegate.convert.pad.scorers import PadScorer, fused_scores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("loso_out", type=Path, help="the --out folder of an `eval pad --protocol leave-one-source-out` run")
    ap.add_argument("--alphas", default="0,0.25,0.5,0.75,1", help="comma-separated shares of the fine-tuned weights")
    ap.add_argument("--pad-dir", type=Path, default=None)
    ap.add_argument("--bpcer", type=float, default=0.05)
    args = ap.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    run = open_loso_run(args.loso_out, args.pad_dir)
    samples, images, boxes, published = run.samples, run.images, run.boxes, run.published
    print("| held-out source | alpha | threshold | ACER | BPCER | APCER worst |")
    print("|---|---|---|---|---|---|")
    means: dict[float, list[float]] = {a: [] for a in alphas}
    for source in sorted({s.source for s in samples}):
        held = [s for s in samples if s.source == source]
        _, val = subject_split([s for s in samples if s.source != source])
        live_val = np.array([s.live for s in val])
        tuned = run.fold_nets(source)
        for alpha in alphas:
            models = {}
            for n, (start, scale) in published.items():
                net = keras.models.clone_model(start)          # a fresh copy to hold the blend
                net.set_weights([(1 - alpha) * p + alpha * t
                                 for p, t in zip(start.get_weights(), tuned[n][0].get_weights())])
                models[n] = (net, scale)
            on_val = fused_scores(models, images, val, boxes)
            t = threshold_at_bpcer(on_val[live_val & ~np.isnan(on_val)], args.bpcer)
            m = judge(PadScorer(f"alpha {alpha}", t, "other sources", None), fused_scores(models, images, held, boxes),
                      held)
            means[alpha].append(m["acer"])
            print(f"| {source} | {alpha:g} | {t:.3f} | {100 * m['acer']:.1f}% | {100 * m['bpcer']:.1f}% | "
                  f"{100 * m['apcer_worst']:.1f}% |", flush=True)
    for alpha, acers in means.items():
        print(f"mean ACER, alpha {alpha:g}: {100 * np.mean(acers):.1f}%")


if __name__ == "__main__":
    main()
