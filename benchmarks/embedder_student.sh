#!/usr/bin/env bash
# Issue 5: distil FaceNet into the MobileFaceNet-style student, export it in every format with cards,
# calibrate thresholds on held-out identities, and measure accuracy, compatibility and speed against
# the teacher. Every number in docs/benchmarks.md ("FaceNet student") comes from this script.
# SKIP_TRAIN=1 re-evaluates the committed files without retraining.
set -euo pipefail
OUT=${OUT:-runs/students}
DST=edge/models/facenet-student
SRC=runs/distill/embedder/student.keras
mkdir -p "$OUT" "$DST"
if [ -z "${SKIP_TRAIN:-}" ]; then
  facegate distill embedder --out runs/distill/embedder --epochs 11
  facegate export --model "$SRC" --format tflite --quant int8 --out "$DST" --full --no-progress
  facegate export --model "$SRC" --format tflite --quant fp16 --out "$DST" --full --no-progress
  facegate export --model "$SRC" --format onnx --quant fp32 --out "$DST" --full --no-progress
  facegate export --model "$SRC" --format onnx --quant int8 --out "$DST" --full --no-progress
  facegate export --model "$SRC" --format coreml --quant fp16 --out "$DST" --no-progress
  facegate distill holdout --out runs/distill/heldout-celeba
  for f in "$DST"/*.tflite "$DST"/*.onnx; do
    facegate calibrate thresholds --model "$f" --data runs/distill/heldout-celeba --per-identity 30 --no-progress
  done
fi
S=$DST/facenet-student_int8.tflite
facegate eval lfw --model "$S" --detector mtcnn-teacher --no-progress --out "$OUT/lfw" | tee "$OUT/lfw.txt"
T="${FACEGATE_CACHE:-$HOME/.cache/facegate}/exports/facenet-teacher"   # `facegate export --model facenet-teacher` writes these
facegate eval lfw --model "$T/facenet-teacher_fp32.onnx" --probe-model "$S" --detector mtcnn-teacher --no-progress --out "$OUT/lfw" | tee -a "$OUT/lfw.txt"
facegate eval lfw --model "$S" --probe-model "$T/facenet-teacher_fp32.onnx" --detector mtcnn-teacher --no-progress --out "$OUT/lfw" | tee -a "$OUT/lfw.txt"
facegate bench embedder --embedder "$T/facenet-teacher_fp32.tflite" --embedder "$T/facenet-teacher_int8.tflite" \
  --embedder "$S" --embedder "$DST/facenet-student_fp16.tflite" --embedder "$DST/facenet-student_fp32.onnx" \
  --threads 1 2 --out "$OUT/bench_embedder.json" | tee "$OUT/bench_embedder.txt"
