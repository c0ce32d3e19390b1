#!/usr/bin/env bash
# Issue 5, speed: how far can the shipped student be narrowed on this machine's data and CPU?
# Every number in docs/benchmarks.md ("Narrower students: the speed/accuracy frontier") comes from
# this script.
#
# `facegate distill compress` removes a share of the inner (expansion) channels of MobileFaceNet
# bottlenecks (block interfaces stay), refits each block's 1x1 projection by least squares, then
# distils the slim copy from the shipped student block by block on the same training faces as
# `distill embedder` (~2 min per epoch on 2 CPU cores). The int8 files keep their PReLUs float (no int8
# PReLU in XNNPACK; see the student's section); files below the default int8 parity floor (0.98) are
# exported with --floor 0.97 to be measured.
#   u625 / u375   session 17: the same share removed everywhere (62.5% / 37.5%)
#   staged        session 18: more where the time is (stem 50%, 56/28 px stage 62.5%), less after
#                 (14 px blocks 37.5%, 7 px blocks and the last conv 25%), from the shipped student
#   progressive   session 18: u375's trained student pruned again where the time is (stem 50%, the
#                 56/28 px stage from 80 to 48 inner channels) with --start, distilled from the shipped one;
#                 progressive-long continues it to 24 epochs
#   head-*        session 19: those two students with their linear head refitted on their own features
#                 (`facegate distill head`: ridge to the teacher, relational towards teacher and peer);
#                 same backbone, so the same speed (not in the timing runs)
# SKIP_TRAIN=1 re-measures the exported files only.
set -euo pipefail
OUT=${OUT:-runs/students-slim}
HELD=runs/distill/heldout-celeba
SRC=convert/students/weights/facenet-student.keras
T="${FACEGATE_CACHE:-$HOME/.cache/facegate}/exports/facenet-teacher"   # `facegate export --model facenet-teacher` writes these
ALL='invresblock_\d+_conv$|conv2d_7$'
S1='conv2d_2_invresblock_\d+_conv$'
facegate distill holdout --out "$HELD"

compress() {   # tag epochs [compress options...]
  local tag=$1 epochs=$2; shift 2
  local run=runs/distill/compress-$tag
  if [ -z "${SKIP_TRAIN:-}" ]; then
    facegate distill compress --model "$SRC" "$@" --epochs "$epochs" --lr 4e-4 --out "$run" --no-progress
    facegate export --model "$run/student.keras" --format tflite --quant int8 --float-ops PRELU --data "$HELD" \
      --calib-images 300 --out "$OUT/$tag" --lfw-pairs 0 --floor 0.97 --no-progress
    facegate export --model "$run/student.keras" --format tflite --quant fp16 --out "$OUT/$tag" --lfw-pairs 0 --no-progress
  fi
  for f in "$OUT/$tag"/facenet-student-slim_int8_float-prelu.tflite "$OUT/$tag"/facenet-student-slim_fp16.tflite; do
    facegate eval lfw --model "$f" --detector mtcnn-teacher --no-progress --out "$OUT/$tag/lfw" | tee -a "$OUT/lfw.txt"
  done
}

compress u625 14 --plan "$ALL=0.625"
compress u375 10 --plan "$ALL=0.375"
compress staged 12 --plan 'peer_conv2d_0$=0.5' --plan "$S1=0.625" --plan 'conv2d_[34]_invresblock_\d+_conv$=0.375' \
  --plan 'conv2d_[56]_invresblock_\d+_conv$|conv2d_7$=0.25'
compress progressive 10 --start runs/distill/compress-u375/student.keras --plan 'peer_conv2d_0$=0.5' --plan "$S1=0.4"
# ... and the same run continued to 24 epochs (the copy resumes at epoch 10 on a new, longer schedule)
if [ -z "${SKIP_TRAIN:-}" ]; then
  rm -rf runs/distill/compress-progressive-long && cp -r runs/distill/compress-progressive runs/distill/compress-progressive-long
fi
compress progressive-long 24 --start runs/distill/compress-u375/student.keras --plan 'peer_conv2d_0$=0.5' --plan "$S1=0.4"

# session 19: refit the heads of the two progressive students on their own features, export, LFW
for tag in progressive progressive-long; do
  if [ -z "${SKIP_TRAIN:-}" ]; then
    facegate distill head --model "runs/distill/compress-$tag/student.keras" --out "runs/distill/head-$tag" --no-progress
    facegate export --model "runs/distill/head-$tag/student.keras" --format tflite --quant int8 --float-ops PRELU \
      --data "$HELD" --calib-images 300 --out "$OUT/head-$tag" --lfw-pairs 0 --floor 0.97 --no-progress
    facegate export --model "runs/distill/head-$tag/student.keras" --format tflite --quant fp16 --out "$OUT/head-$tag" \
      --lfw-pairs 0 --no-progress
  fi
  for f in "$OUT/head-$tag"/facenet-student-slim_int8_float-prelu.tflite "$OUT/head-$tag"/facenet-student-slim_fp16.tflite; do
    facegate eval lfw --model "$f" --detector mtcnn-teacher --no-progress --out "$OUT/head-$tag/lfw" | tee -a "$OUT/lfw.txt"
  done
done

# timing: every int8 file with the teacher and the shipped mixed file, three separate runs (the spread
# between runs on this machine is larger than within one)
mkdir -p "$OUT/timing"
for tag in u625 u375 staged progressive progressive-long; do
  cp "$OUT/$tag/facenet-student-slim_int8_float-prelu.tflite" "$OUT/timing/$tag.tflite"
done
for i in 1 2 3; do
  python benchmarks/speed_vs_teacher.py "$OUT/timing" --repeats 100 | tee "$OUT/timing/run$i.txt"
  cp "$OUT/timing/result.json" "$OUT/timing/run$i.json"
done
python benchmarks/embedder_frontier.py --timing "$OUT/timing"
