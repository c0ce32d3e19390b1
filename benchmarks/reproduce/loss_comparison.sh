#!/usr/bin/env bash
# Issue 26: the identity losses side by side on an equal budget. Each run starts from the committed
# student (convert/students/weights/facenet-student.keras), trains the same number of steps on the same
# CelebA dev photos (1 in 8 identities held out, never trained on) with the distillation terms, plus one
# identity loss at a time, and is judged on the held-out identities: same/different-person pair accuracy
# and cosine to the teacher. The table in docs/benchmarks.md ("Identity losses") comes from this script.
# STEPS, EPOCHS and IMAGES set the budget (defaults: 2 epochs x 30 steps of 64 faces, 2400 photos);
# SKIP_TRAIN=1 only prints the table of the runs already in $OUT.
set -euo pipefail
OUT=${OUT:-runs/losses}
STEPS=${STEPS:-30}
EPOCHS=${EPOCHS:-2}
IMAGES=${IMAGES:-2400}
DATA=${FACEGATE_SHARED:-../shared}/datasets/celeba_dev/images
INIT=convert/students/weights/facenet-student.keras
mkdir -p "$OUT"
run() {   # name, then --loss options
  local name=$1; shift
  facegate distill embedder --student peer --init "$INIT" --data "$DATA" --max-images "$IMAGES" \
    --epochs "$EPOCHS" --steps-per-epoch "$STEPS" --lr 2e-4 --out "$OUT/$name" --restart --no-progress "$@" \
    > "$OUT/$name.log" 2>&1
}
if [ -z "${SKIP_TRAIN:-}" ]; then
run distill-only
run triplet --loss triplet=0.5
run contrastive --loss contrastive=0.5
run center --loss center=0.05
run arcface --loss arcface=0.1
fi
python - "$OUT" "$DATA" "$IMAGES" "$INIT" <<'PY'
import csv, sys
from pathlib import Path
import keras
from facegate.convert.distill.embedder import embed_faces, heldout_metrics
from facegate.convert.distill.pipeline import load_targets
out, data, images, init = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
# the starting point on the same held-out identities (the runs' own split and cached teacher targets)
_, val = load_targets([data], None, images, 8, 0, False, None)
start = heldout_metrics(embed_faces(keras.saving.load_model(init, compile=False), val.centre_crops()), val)
print("| run | identity loss | held-out pair accuracy | held-out cosine to teacher | genuine / impostor cosine |")
print("|---|---|---|---|---|")
print(f"| committed student, no step | - | {100 * start['val_pair_accuracy']:.2f}% | {start['val_cosine_mean']:.4f} | "
      f"{start['val_genuine_mean']:.3f} / {start['val_impostor_mean']:.3f} |")
for name, loss in (("distill-only", "none"), ("triplet", "triplet 0.5"), ("contrastive", "contrastive 0.5"),
                   ("center", "center 0.05"), ("arcface", "arcface 0.1")):
    rows = list(csv.DictReader((out / name / "log.csv").open()))
    last = rows[-1]
    print(f"| {name} | {loss} | {100 * float(last['val_pair_accuracy']):.2f}% | {float(last['val_cosine_mean']):.4f} | "
          f"{float(last['val_genuine_mean']):.3f} / {float(last['val_impostor_mean']):.3f} |")
PY
