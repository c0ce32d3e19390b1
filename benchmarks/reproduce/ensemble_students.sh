#!/usr/bin/env bash
# Issue 26: what each teacher combination gives the student. Every run trains on the same faces (the
# development set of `facegate distill embedder`: CelebA dev, LFW people outside pairs.txt, large WIDER
# faces and, since 2026-12-07, pad_dev's live people — the table of that date predates them; 1 in 8
# labelled identities held out) and keeps FaceNet's coordinates (cosine terms to the teacher);
# only the similarities the relational terms match change: the teacher/peer mix of the shipped head
# (per augmented view), or the mean cosine of an ensemble (`--ensemble`, per face, flip-averaged).
#   head-*      the closed-form head on the pretrained MobileFaceNet, refined 3000 steps (epoch 0)
#   backbone-*  the head-tpd student, whole network fine-tuned (AdamW 1e-5; the imported peer has no BatchNorm)
# Each student is scored on the held-out identities and on LFW View 2 (6,000 pairs, 10 folds).
# The table in docs/benchmarks.md ("Teacher ensembles") comes from this script.
# EPOCHS sets the backbone budget (default 2); ONLY=name runs one row; SKIP_TRAIN=1 prints the table.
set -euo pipefail
OUT=${OUT:-runs/ensemble}
EPOCHS=${EPOCHS:-2}
mkdir -p "$OUT"
want() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]; }
run() {   # name, then distill options; then LFW View 2 on the result
  local name=$1; shift
  want "$name" || return 0
  if [ -z "${SKIP_TRAIN:-}" ]; then
    facegate distill embedder --student peer --out "$OUT/$name" --restart --no-progress "$@" > "$OUT/$name.log" 2>&1
    facegate eval lfw --model "$OUT/$name/student.keras" --out "$OUT/$name/lfw" --no-progress >> "$OUT/$name.log" 2>&1
  fi
}
run head-shipped --epochs 0                         # teacher + peer, peer share 0.5, peer per view
run head-t --epochs 0 --ensemble teacher
run head-tp --epochs 0 --ensemble teacher,peer
run head-td --epochs 0 --ensemble teacher,dlib
run head-tpd --epochs 0 --ensemble teacher,peer,dlib
BACKBONE=(--init "$OUT/head-tpd/student.keras" --lr 1e-5 --epochs "$EPOCHS")
run backbone-t "${BACKBONE[@]}"
run backbone-tpd "${BACKBONE[@]}" --ensemble teacher,peer,dlib
run backbone-tpd-r10 "${BACKBONE[@]}" --ensemble teacher,peer,dlib --loss relational=10
# 6 more epochs of the weight-10 run (8 in all), on the default set with pad_dev's live people
run backbone-tpd-r10-e8 --init "$OUT/backbone-tpd-r10/student.keras" --lr 1e-5 --epochs 6 \
  --ensemble teacher,peer,dlib --loss relational=10
python - "$OUT" <<'PY'
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| student | relational targets | held-out pair accuracy | held-out cosine to teacher | LFW View 2 | TAR @ FAR 1e-3 |")
print("|---|---|---|---|---|---|")
for name, what in (("head-shipped", "teacher + peer (shipped head)"), ("head-t", "teacher"),
                   ("head-tp", "teacher + peer"), ("head-td", "teacher + dlib"), ("head-tpd", "teacher + peer + dlib"),
                   ("backbone-t", "teacher (backbone from head-tpd)"),
                   ("backbone-tpd", "teacher + peer + dlib (backbone from head-tpd)"),
                   ("backbone-tpd-r10", "teacher + peer + dlib, relational weight 10 (backbone from head-tpd)"),
                   ("backbone-tpd-r10-e8", "the same, 6 more epochs (8 in all; 7,365 faces with pad_dev's live people)")):
    log, lfw = out / name / "log.csv", list((out / name / "lfw").glob("lfw_*.json"))
    if not log.exists() or not lfw:
        continue
    best = max(csv.DictReader(log.open()), key=lambda r: float(r.get("val_cosine_mean") or 0))
    e = json.loads(lfw[0].read_text())
    print(f"| {name} (epoch {best['epoch']}) | {what} | {100 * float(best['val_pair_accuracy']):.2f}% | "
          f"{float(best['val_cosine_mean']):.4f} | {100 * e['accuracy_mean']:.2f}% ± {100 * e['accuracy_std']:.2f} | "
          f"{100 * e['tar_at_far_1e-3']:.2f}% |")
PY
