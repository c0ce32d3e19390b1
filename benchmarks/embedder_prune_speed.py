r"""Issue 5: how much of the student's inner width must go for 20x? (speed only — nothing is trained)

    python benchmarks/embedder_prune_speed.py [--ratios 0.25 0.5 0.625]
    python benchmarks/embedder_prune_speed.py --plans "conv2d_2_.*invresblock_\d+_conv$=0.625;conv2d_[3-7].*=0.375"

Prunes the shipped student's bottleneck inner channels (and the last 512-channel conv) at each ratio,
as `facegate distill compress --plan` does before training, exports the int8 file with PReLU float
like `facegate export --float-ops PRELU` (linear convs folded first, as export does), and times it
with the shipped mixed file and the teacher fp32 TFLite in one run, in a fresh process. The pruned
networks are NOT accurate until `distill compress` trains them: the numbers only choose the ratio
worth training. `--plans` times whole `distill compress` plans instead (each plan: `;`-separated
LAYER_REGEX=RATIO items, the same as repeated `--plan` options).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from speed_vs_teacher import TEACHER, time_folder_in_fresh_process  # benchmarks/ is on sys.path when run

from facegate.calibration.representative import representative_dataset
from facegate.convert.distill.compress import parse_plan, prune_by_plan
from facegate.convert.export.model import prepared_for_export
from facegate.convert.export.tflite import export_tflite
from facegate.convert.registry import resolve_embedder

INNER = r"invresblock_\d+_conv$|conv2d_7$"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="convert/students/weights/facenet-student.keras")
    ap.add_argument("--data", type=Path, default=Path("runs/distill/heldout-celeba"), help="calibration faces")
    ap.add_argument("--teacher", type=Path, default=TEACHER)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.625])
    ap.add_argument("--plans", nargs="+", default=None, help="whole plans instead of --ratios")
    ap.add_argument("--out", type=Path, default=Path("runs/students/prune-speed"))
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    source = resolve_embedder(args.model)
    representative = representative_dataset(source.spec, args.data, limit=100, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.tflite"):        # the timing step times every file in the folder
        old.unlink()
    plans = ([(f"{ratio:g} of inner channels removed (untrained)", f"pruned{ratio:g}", [(INNER, ratio)])
              for ratio in args.ratios] if not args.plans else
             [(f"plan {text} (untrained)", f"plan{i}", parse_plan(text.split(";"))) for i, text in enumerate(args.plans)])
    for label, stem, plan in plans:
        slim, _ = prune_by_plan(source.backend.model, plan, data=None)
        prepared, _, _ = prepared_for_export(slim, representative)
        export_tflite(prepared, args.out / f"{stem}_int8_float-prelu.tflite", quant="int8",
                      representative=representative, float_ops=("PRELU",))
        print(f"{stem}: {label}")
    time_folder_in_fresh_process(args.out, args.repeats, args.teacher)

if __name__ == "__main__":
    main()
