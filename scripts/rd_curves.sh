#!/usr/bin/env bash
# The AIS rate-distortion curves of the committed MNIST sweep (results/mnist_rd) at beta 1
# and 0.1, every family, at configs/rd_curve_mnist.gin's counts. The sweep kept no
# checkpoints but `-+v`'s: retrain the others first, by the very command of each run's log:
#
#   python scripts/retrain_runs.py --output_dir=runs/mnist_rd \
#       results/mnist_rd/*/beta=0.1_anneal=0_seed=0 results/mnist_rd/*/beta=1_anneal=0_seed=0
#
# Each curve is computed from the retrained run under runs/mnist_rd (or the committed run
# where its checkpoint was kept) and its rd_curve.json copied beside the committed run's
# record. Then BDMC on data drawn from a factorized model (below). Resumable: a run whose
# committed folder has its record is skipped.
#
#   bash scripts/rd_curves.sh > results/mnist_rd_curves.log 2>&1
#
# PARALLEL (default 2) curves run at once with THREADS (default 1) TensorFlow threads each:
# on 2 cores, two one-thread processes computed two curves in 1.16x the time one
# two-thread process took for one. SKIP_MISSING=1 skips the runs not retrained yet.
set -euo pipefail
cd "$(dirname "$0")/.."
RETRAINED=${RETRAINED:-runs/mnist_rd}

# Whether the rd_curve.json $1 holds a record of split $2.
has_split() {
  [[ -f "$1" ]] && python -c \
      'import json, sys; sys.exit(sys.argv[2] not in json.load(open(sys.argv[1])))' "$1" "$2"
}

# Records split $2 of the committed run $1 (further arguments go to rd_curve), from its
# retrained folder under $RETRAINED or, where the sweep kept its checkpoint, from the
# committed one, and copies the record beside the committed run's. A split recorded before
# is kept.
record() {
  local run=$1 split=$2 model_dir
  shift 2
  local committed="results/mnist_rd/$run"
  if has_split "$committed/rd_curve.json" "$split"; then
    echo "# $(date -u +'%F %T') $run ($split): recorded before"
    return 0
  fi
  model_dir="$RETRAINED/$run"
  [[ -f "$model_dir/checkpoint" ]] || model_dir="$committed"
  if [[ ! -f "$model_dir/checkpoint" ]]; then
    if [[ -n "${SKIP_MISSING:-}" ]]; then
      echo "# $(date -u +'%F %T') $run: no checkpoint yet, skipped"
      return 0
    fi
    echo "error: $run has no checkpoint in $RETRAINED or results/mnist_rd: retrain it" >&2
    exit 1
  fi
  if ! has_split "$model_dir/rd_curve.json" "$split"; then  # Else recorded, not copied.
    echo "# $(date -u +'%F %T') $run ($split): from $model_dir $*"
    python -m brokenelbo.rd_curve --model_dir="$model_dir" --split="$split" \
        --gin_file=configs/rd_curve_mnist.gin "$@"
  fi
  [[ "$model_dir" == "$committed" ]] || cp "$model_dir/rd_curve.json" "$committed/"
  echo "# $(date -u +'%F %T') $run ($split): done"
}

if [[ "${1:-}" == --one ]]; then  # One job of the list below (run by xargs).
  shift
  record "$@"
  exit 0
fi

# The jobs, one a line: run, split, rd_curve's further flags (no spaces). A PixelCNN
# decoder's HMC step costs 4.4x a factorized one's (-+- at beta 0.1 against --v at beta 1,
# 30 distributions), so its curves are cut to fit the machine:
# - at beta 1 every PixelCNN encoder's rate is 0.03 nats or less: the curve is nearly flat
#   and 200 distributions on 4 of the 8 images suffice (AIS's NLL against the encoder's
#   NLL_1 and NLL_5000 on the same images, in the record, is the check);
# - at beta 0.1 (rates 54-125 nats) the full 1000 distributions on 2 of the 8 images.
job_list() {
  local family
  for family in --- --+ --v +-- +-+ +-v; do
    echo "$family/beta=1_anneal=0_seed=0 test"
    echo "$family/beta=0.1_anneal=0_seed=0 test"
  done
  for family in -+- -++ -+v ++- +++ ++v; do
    echo "$family/beta=1_anneal=0_seed=0 test --gin_bindings=rd_curve_suite.num_examples=4" \
         "--gin_bindings=rd_curve_suite.num_steps=200"
  done
  for family in -+- -++ -+v ++- +++ ++v; do
    echo "$family/beta=0.1_anneal=0_seed=0 test --gin_bindings=rd_curve_suite.num_examples=2"
  done
  # How far AIS's log p(x) is from the truth at these counts on a real decoder: BDMC on 4
  # pairs (z, x) drawn from the model (Grosse et al. 2015), recorded as the validation
  # split's record (its curve on one validation image only).
  echo "---/beta=1_anneal=0_seed=0 validation --gin_bindings=rd_curve_suite.num_examples=1" \
       "--gin_bindings=rd_curve_suite.bdmc_examples=4"
}

export TF_NUM_INTRAOP_THREADS=${THREADS:-1} TF_NUM_INTEROP_THREADS=${THREADS:-1}
job_list | xargs -L 1 -P "${PARALLEL:-2}" bash "$0" --one
