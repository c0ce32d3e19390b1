#!/usr/bin/env bash
# Distil embedder students on a GPU machine that has JAX or PyTorch but no TensorFlow.
#
#   gpu_distill.sh PACK OUTDIR MINUTES NAME:"ARGS" [NAME:"ARGS" ...]
#
# Runs one `python -m facegate.convert.distill.portable train` per NAME in parallel (a small student
# leaves most of a big GPU idle), splitting the CPU cores between their augmentation workers, each
# with the same time budget (its learning-rate schedule completes inside it). Needs keras (+ namex,
# optree) importable; the repository need not be installed. Leaves OUTDIR/NAME/{student.weights.h5,
# student.json,log.csv} and OUTDIR/NAME.log; bring a folder back and run `facegate distill import`.
set -u
pack=$1; out=$2; minutes=$3; shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
pkg=$(mktemp -d); mkdir -p "$pkg/facegate"
ln -s "$root/convert" "$pkg/facegate/convert"; ln -s "$root/edge" "$pkg/facegate/edge"
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
if ! python3 -c "import keras; keras.ops.ones(1)" >/dev/null 2>&1; then
  echo "keras with the $KERAS_BACKEND backend does not start; trying torch" >&2
  export KERAS_BACKEND=torch
fi
n=$#; workers=$(( ($(nproc) - 1) / n )); [ "$workers" -ge 1 ] || workers=1
export XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round(0.9 / $n, 2))")
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%:*}; args=${spec#*:}
  # shellcheck disable=SC2086  # ARGS is a list of options
  python3 -m facegate.convert.distill.portable train "$pack" --out "$out/$name" --steps 100000000 \
    --max-minutes "$minutes" --workers "$workers" $args > "$out/$name.log" 2>&1 &
done
wait
for spec in "$@"; do name=${spec%%:*}; echo "== $name"; grep -v WARNING "$out/$name.log" | tail -3; done
