#!/usr/bin/env bash
# The checks that need a GPU, in under 10 minutes on one GPU (H100/H200, 16 CPU cores); run
# from anywhere, it works in the repository root. Logs: $GPU_CHECK_OUT/<check>.log (default
# /tmp/gpu_check); one line `CHECK <name>: PASS|FAIL (...)` per check, then
# `GPU CHECK: n passed, m failed`; exit status 1 if any failed.
#
#   scripts/gpu_check.sh                                    # on the GPU machine
#   GPU_CHECK_ALLOW_CPU=1 GPU_CHECK_COLLECT_ONLY=1 GPU_CHECK_JOBS=1 \
#       GPU_CHECK_ONLY=device,precision,pixelcnn,distribute scripts/gpu_check.sh  # plumbing
#
# The checks, in this order:
#   device      nvidia-smi -L and tf.config.list_physical_devices('GPU'); with no GPU the
#               script stops with one line (unless GPU_CHECK_ALLOW_CPU=1).
#   Then side by side (GPU_CHECK_JOBS at a time, default all; TF_FORCE_GPU_ALLOW_GROWTH so
#   that the processes share the GPU's memory):
#   precision   tests/test_precision.py::MixedPrecisionTest -k bfloat16_matches_float32
#               (mixed_bfloat16 against float32, families ++v and +-+: the suite's only
#               mixed-precision test; -k leaves out tf.test.TestCase's `test_session`).
#   float16     `python -m brokenelbo.train`, ++v at smoke size with
#               train.mixed_precision = 'mixed_float16', train.loss_scale = 1024. (the GPU setting
#               of docs/configuration.md, which no test runs: the tests use bfloat16, which a CPU executes).
#   xla         the same smoke run with train.jit_compile = True (no test compiles training
#               with XLA; the bench below times it at paper size).
#   pixelcnn    tests/test_pixelcnn.py::RowSamplingTest -k 'naive or both_passes': the fast
#               PixelCNN sampler draws the naive sampler's images (7 network shapes up to
#               28x28 with three resolutions), also with a layer added, and falls back to it.
#   distribute  tests/test_distribute.py: MirroredStrategy over two logical CPU devices
#               against one device (the test pins its devices to /cpu:0 and /cpu:1, so on
#               the GPU machine it checks TensorFlow's build there, not the GPU path).
#   mirrored    the smoke run of ++v with train.strategy = @tf.distribute.MirroredStrategy,
#               one replica on the GPU (the strategy's GPU path).
#   Then alone (its timings are the point):
#   bench       `python -m brokenelbo.bench` at paper size (no gin file: Appendix F's
#               networks, 64-feature PixelCNN, batch 100) for ---,-+-,+-v,-++ (plain
#               factorised, PixelCNN, IAF with VampPrior, PixelCNN with MAF marginal), plain
#               and XLA training, evaluation, sampling and the importance-weighted bound, the
#               naive sampler and the suite's extrapolation left out; JSON in
#               $GPU_CHECK_OUT/bench.json, one `BENCH <family>:` line each with steps/s, and
#               scripts/bench_table.py's table in bench.log (not a check: its targets are
#               the CPU's).
#
# Timeouts (`timeout`, the whole process group), chosen so that their sum, 570 s, stays
# under 10 minutes even if every check runs out of time:
#   device 45 s: TensorFlow's import and CUDA's start, about 10-20 s.
#   the side-by-side checks 210 s each, 210 s in all: each is a TensorFlow start plus smoke-
#     size tracing (the CPU suite runs each module in 15-60 s on 2 cores); 16 cores take six.
#     With GPU_CHECK_JOBS below 6 they run in rounds, and the sum is no longer bounded.
#   bench 300 s: four families, each traced twice (plain, XLA) at paper size; the PixelCNN
#     families' fast sampler and bound dominate the tracing.
#   bench table 15 s.
# pip install -e '.[test]', run only when `import brokenelbo` fails, is outside the budget.
#
# Environment:
#   GPU_CHECK_OUT          logs, run directories and bench.json (default /tmp/gpu_check);
#                          a check's log and run directory are replaced when it runs again.
#   GPU_CHECK_ALLOW_CPU=1  go on without a GPU (a dry run of the plumbing on a CPU).
#   GPU_CHECK_ONLY         comma-separated checks to run (default all; device always runs).
#   GPU_CHECK_COLLECT_ONLY=1  the test checks only collect (PASS: at least one test).
#   GPU_CHECK_JOBS         side-by-side checks at a time (default 8, all of them).
#   GPU_CHECK_BENCH_ARGS   replaces the bench's flags after --families and --output, e.g.
#                          '--gin_file=configs/smoke.gin --steps=1 --repeats=1 --warmup=0
#                          --noxla --naive_repeats=0 --nosuite' for a dry run.
#   GPU_CHECK_FAMILIES     the bench's families (default ---,-+-,+-v,-++).
#   PYTHON                 the interpreter (default python).
# If pixelcnn fails only by a few 1e-5 in the logits, or by a pixel drawn differently, the
# GPU's TF32 matrix products are the likely cause: rerun with NVIDIA_TF32_OVERRIDE=0.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${GPU_CHECK_OUT:-/tmp/gpu_check}
PY=${PYTHON:-python}
JOBS=${GPU_CHECK_JOBS:-8}
FAMILIES=${GPU_CHECK_FAMILIES:----,-+-,+-v,-++}
BENCH_ARGS=${GPU_CHECK_BENCH_ARGS:---steps=10 --repeats=3 --warmup=1 --eval_batches=2 --naive_repeats=0 --nosuite}
PYTEST=(-m pytest -n 0 -p no:cacheprovider -q)
SMOKE=(-m brokenelbo.train --gin_file=configs/++v.gin --gin_file=configs/smoke.gin)
mkdir -p "$OUT" || { echo "GPU CHECK: cannot create GPU_CHECK_OUT=$OUT"; exit 1; }
rm -f "$OUT"/*.status
START=$EPOCHREALTIME

wanted() {  # Whether check $1 is in GPU_CHECK_ONLY (or that is unset).
  [[ -z ${GPU_CHECK_ONLY:-} || ,$GPU_CHECK_ONLY, == *",$1,"* ]]
}

# run_check NAME TIMEOUT KIND COMMAND...: runs COMMAND under `timeout` with its output in
# NAME.log, then writes NAME.status: the exit status, the seconds, and a detail for the
# summary line. KIND says what else a pass needs: `pytest` (a test passed, or with
# GPU_CHECK_COLLECT_ONLY one was collected), `run` (the run directory NAME.run has metrics),
# `bench` (bench.json has every family), `plain` (nothing).
run_check() {
  local name=$1 limit=$2 kind=$3; shift 3
  local log=$OUT/$name.log start=$EPOCHREALTIME rc detail=''
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  local seconds; seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
  if (( rc == 124 || rc == 137 )); then
    detail="timed out after $limit s"
  elif (( rc == 0 )); then
    case $kind in
      pytest)
        local n
        if [[ -n ${GPU_CHECK_COLLECT_ONLY:-} ]]; then
          n=$(grep -oE '[0-9]+(/[0-9]+)? tests? collected' "$log" | tail -1 | grep -oE '^[0-9]+')
          if (( ${n:-0} > 0 )); then detail="$n collected"; else rc=5; detail='no test collected'; fi
        else
          n=$(grep -oE '[0-9]+ passed' "$log" | tail -1 | cut -d' ' -f1)
          if (( ${n:-0} > 0 )); then detail="$n passed"; else rc=5; detail='no test passed'; fi
          n=$(grep -oE '[0-9]+ skipped' "$log" | tail -1)
          [[ -n $n ]] && detail+=", $n"
        fi ;;
      run)
        [[ -s $OUT/$name.run/metrics.jsonl ]] || { rc=1; detail='no metrics.jsonl'; } ;;
      bench)
        "$PY" - "$OUT/bench.json" "$FAMILIES" >>"$log" 2>&1 <<'EOF' || { rc=1; detail="bench.json lacks a family"; }
import json, sys
families = json.load(open(sys.argv[1]))['families']
missing = [f for f in sys.argv[2].split(',') if f not in families]
sys.exit(f'bench.json lacks {missing}' if missing else 0)
EOF
        ;;
    esac
  fi
  echo "$rc $seconds $detail" >"$OUT/$name.status"
}

# report NAME: prints NAME's summary line from NAME.status and counts it.
PASSED=0 FAILED=0
report() {
  local name=$1 rc seconds detail
  if [[ ! -f $OUT/$name.status ]]; then
    echo "CHECK $name: FAIL (did not finish, see $OUT/$name.log)"; FAILED=$((FAILED + 1)); return
  fi
  read -r rc seconds detail <"$OUT/$name.status"
  if (( rc == 0 )); then
    echo "CHECK $name: PASS ($seconds s${detail:+; $detail})"; PASSED=$((PASSED + 1))
  else
    echo "CHECK $name: FAIL (rc $rc${detail:+, $detail}, see $OUT/$name.log)"
    FAILED=$((FAILED + 1))
  fi
}

# The package, installed if it is not (outside the 10 minutes).
if ! "$PY" -c 'import brokenelbo' >/dev/null 2>&1; then
  echo "brokenelbo is not importable: pip install -e '.[test]' (log: $OUT/install.log)"
  timeout 300 "$PY" -m pip install -e '.[test]' >"$OUT/install.log" 2>&1 \
    || { echo "GPU CHECK: pip install -e '.[test]' failed, see $OUT/install.log"; exit 1; }
fi

# 1. The device.
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | sed 's/^/DEVICE nvidia-smi: /'
run_check device 45 plain "$PY" -c '
import brokenelbo, sys, tensorflow as tf
gpus, cpus = (tf.config.list_physical_devices(kind) for kind in ("GPU", "CPU"))
print(f"DEVICE tensorflow {tf.__version__} (CUDA build: {tf.test.is_built_with_cuda()}): "
      f"GPUs {[g.name for g in gpus]}, {len(cpus)} CPU device(s)")
for gpu in gpus:
  print(f"DEVICE {gpu.name}: {tf.config.experimental.get_device_details(gpu)}")
sys.exit(0 if gpus else 3)'
grep '^DEVICE' "$OUT/device.log"
read -r rc seconds _ <"$OUT/device.status"
if (( rc == 3 )); then
  if [[ -z ${GPU_CHECK_ALLOW_CPU:-} ]]; then
    echo "GPU CHECK: no GPU visible to TensorFlow (GPU_CHECK_ALLOW_CPU=1 runs on a CPU)"
    exit 1
  fi
  echo "0 $seconds no GPU, GPU_CHECK_ALLOW_CPU=1" >"$OUT/device.status"
fi
report device
if (( FAILED )); then  # No TensorFlow: every other check would fail the same way.
  echo "GPU CHECK: $PASSED passed, $FAILED failed"
  exit 1
fi

# 2. The tests and smoke runs, side by side.
COLLECT=()
[[ -n ${GPU_CHECK_COLLECT_ONLY:-} ]] && COLLECT=(--collect-only)
side_by_side() {  # NAME KIND COMMAND...: starts the check once fewer than JOBS run.
  local name=$1; shift
  wanted "$name" || return 0
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n; done
  [[ $1 == run ]] && rm -rf -- "$OUT/$name.run"
  TF_FORCE_GPU_ALLOW_GROWTH=true run_check "$name" 210 "$@" &
  SIDE+=("$name")
}
SIDE=()
side_by_side precision pytest "$PY" "${PYTEST[@]}" "${COLLECT[@]}" \
  tests/test_precision.py::MixedPrecisionTest -k bfloat16_matches_float32
side_by_side float16 run "$PY" "${SMOKE[@]}" --model_dir="$OUT/float16.run" \
  --gin_bindings="train.mixed_precision = 'mixed_float16'" \
  --gin_bindings='train.loss_scale = 1024.'
side_by_side xla run "$PY" "${SMOKE[@]}" --model_dir="$OUT/xla.run" \
  --gin_bindings='train.jit_compile = True'
side_by_side pixelcnn pytest "$PY" "${PYTEST[@]}" "${COLLECT[@]}" \
  tests/test_pixelcnn.py::RowSamplingTest -k 'naive or both_passes'
side_by_side distribute pytest "$PY" "${PYTEST[@]}" "${COLLECT[@]}" tests/test_distribute.py
side_by_side mirrored run "$PY" "${SMOKE[@]}" --model_dir="$OUT/mirrored.run" \
  --gin_bindings='train.strategy = @tf.distribute.MirroredStrategy'
(( ${#SIDE[@]} )) && echo "running side by side: ${SIDE[*]} (up to $JOBS at a time, 210 s each at most)"
wait
for name in "${SIDE[@]}"; do report "$name"; done

# 3. The paper-size benchmark, alone on the device.
if wanted bench; then
  rm -f "$OUT/bench.json"
  echo "running bench: families $FAMILIES, $BENCH_ARGS (300 s at most)"
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags.
  run_check bench 300 bench "$PY" -m brokenelbo.bench --families="$FAMILIES" \
    --output="$OUT/bench.json" $BENCH_ARGS
  report bench
  if [[ -s $OUT/bench.json ]]; then
    "$PY" - "$OUT/bench.json" <<'EOF'
import json, sys
bench = json.load(open(sys.argv[1]))
for family, r in bench['families'].items():
  batch, plain = r['batch_size'], r['train_images_per_second']
  line = f'BENCH {family}: train {plain / batch:.2f} steps/s ({plain:.1f} images/s, batch {batch}'
  if 'train_flop_utilization' in r:
    line += f', {r["train_flop_utilization"]:.0%} of matmul peak'
  line += ')'
  if 'train_images_per_second_xla' in r:
    xla = r['train_images_per_second_xla']
    line += f', XLA {xla / batch:.2f} steps/s ({xla / plain:.2f}x)'
  line += (f', eval {r["eval_images_per_second"]:.0f} images/s, '
           f'{bench.get("settings", {}).get("num_samples", 100)} samples {r["sample_seconds"]:.2f} s')
  print(line)
print(f'BENCH matmul peak {bench["matmul_peak_flops"] / 1e12:.2f} TFLOP/s, input pipeline '
      f'{bench["pipeline_images_per_second"]:.0f} images/s')
EOF
    { echo '--- scripts/bench_table.py'; timeout 15 "$PY" scripts/bench_table.py "$OUT/bench.json"; } \
      >>"$OUT/bench.log" 2>&1
  fi
fi

echo "total $(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", b - a}') s; logs in $OUT"
echo "GPU CHECK: $PASSED passed, $FAILED failed"
(( FAILED == 0 ))
