#!/usr/bin/env bash
# The AIS rate-distortion curves of the committed MNIST sweep (results/mnist_rd) at beta 1
# and 0.1, every family, at configs/rd_curve_mnist.gin's counts. The sweep kept no
# checkpoints but `-+v`'s: retrain the others
# first, by the very command of each run's log:
#
#   python scripts/retrain_runs.py --output_dir=runs/mnist_rd \
#       results/mnist_rd/*/beta=0.1_anneal=0_seed=0 results/mnist_rd/*/beta=1_anneal=0_seed=0
#
# Each curve is computed from the retrained run under runs/mnist_rd (or the committed run
# where its checkpoint was kept) and its rd_curve.json copied beside the committed run's
# record. Then BDMC on data drawn from two of the models (below). Resumable: a run whose
# committed folder has its record is skipped.
#
#   bash scripts/rd_curves.sh > results/mnist_rd_curves.log 2>&1
#
# SKIP_MISSING=1 skips the runs not retrained yet (to run beside the retraining).
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
    echo "# $(date -u +'%F %T') $run ($split): from $model_dir"
    python -m brokenelbo.rd_curve --model_dir="$model_dir" --split="$split" \
        --gin_file=configs/rd_curve_mnist.gin "$@"
  fi
  [[ "$model_dir" == "$committed" ]] || cp "$model_dir/rd_curve.json" "$committed/"
  echo "# $(date -u +'%F %T') $run ($split): done"
}

for beta in 1 0.1; do
  for family in --- --+ --v -+- -++ -+v +-- +-+ +-v ++- +++ ++v; do
    record "$family/beta=${beta}_anneal=0_seed=0" test
  done
done
# How far AIS's log p(x) is from the truth at these counts, on the real decoders: BDMC on
# 4 pairs (z, x) drawn from each of a factorized and a PixelCNN model (Grosse et al. 2015),
# recorded as the validation split's record (its curve on one validation image only).
for run in "---/beta=1_anneal=0_seed=0" "-+v/beta=1_anneal=0_seed=0"; do
  record "$run" validation --gin_bindings='rd_curve_suite.num_examples = 1' \
      --gin_bindings='rd_curve_suite.bdmc_examples = 4'
done
