#!/usr/bin/env bash
# Issue 6: distil, export, evaluate and time the MobileNet MTCNN student against the teacher.
# Every number in docs/benchmarks.md ("MTCNN student") comes from this script. Run from the repo root
# with the venv active. SKIP_TRAIN=1 evaluates the committed nets without retraining.
set -euo pipefail
OUT=${OUT:-runs/students}
mkdir -p "$OUT"
if [ -z "${SKIP_TRAIN:-}" ]; then
  facegate distill detector --out runs/distill/detector --epochs 40 40 30
  facegate distill export-detector --src runs/distill/detector --out edge/models
fi
for d in mtcnn-teacher mtcnn-student mtcnn-student-int8; do
  facegate eval wider --detector "$d" --no-progress --out "$OUT/wider" | tee -a "$OUT/wider.txt"
  facegate eval wider --detector "$d" --holdout-every 4 --no-progress --out "$OUT/wider" | tee -a "$OUT/wider.txt"
done
for d in mtcnn-student mtcnn-student-int8; do
  facegate eval lfw-detect --detector "$d" --no-progress --out "$OUT/lfw_detect" | tee -a "$OUT/lfw_detect.txt"
done
facegate bench detector --detector mtcnn-teacher mtcnn-student mtcnn-student-int8 --format tflite onnx \
  --threads 1 2 --out "$OUT/bench_detector.json" | tee "$OUT/bench_detector.txt"
