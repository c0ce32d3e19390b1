#!/usr/bin/env bash
# Issue 5: distil FaceNet into the MobileFaceNet-style student, export it in every format with cards,
# calibrate thresholds on held-out identities, and measure accuracy, compatibility and speed against
# the teacher. Every number in docs/benchmarks.md ("FaceNet student") comes from this script.
#
# The committed student was trained on a lent H100 without TensorFlow (JAX backend), in two stages:
#   here:       facegate distill pack --out .pack/celeba-lfw-wider.npz
#   GPU box:    convert/distill/gpu_distill.sh .pack/celeba-lfw-wider.npz runs 7 prelu:"--activation prelu"
#               convert/distill/gpu_distill.sh .pack/celeba-lfw-wider.npz runs 8 \
#                   prelu2:"--init runs/prelu/student.weights.h5 --lr 2e-3 --batch-size 512 --validate-every 400"
#   here:       facegate distill import runs/prelu2 --out runs/distill/embedder-gpu/student.keras
# (CPU only: `facegate distill embedder --out runs/distill/embedder --epochs N` and SRC=runs/distill/embedder/student.keras.)
# SKIP_TRAIN=1 re-evaluates the committed files without exporting again.
set -euo pipefail
OUT=${OUT:-runs/students}
DST=edge/models/facenet-student
SRC=${SRC:-runs/distill/embedder-gpu/student.keras}
mkdir -p "$OUT" "$DST"
if [ -z "${SKIP_TRAIN:-}" ]; then
  [ -f "$SRC" ] || { echo "no student at $SRC: train one first (see the top of this script)" >&2; exit 1; }
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
