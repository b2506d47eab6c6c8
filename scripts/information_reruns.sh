#!/usr/bin/env bash
# The runs of the information table (docs/broken_elbo.md, "Figure 5 and the information
# suite of every family"): the sweep's CPU profile again, each run followed by its information
# suite. The 12 families at beta 1 (also Figure 5) and 0.1, then `-+v` and `++v` at the
# sweep's other betas and with KL annealing over the first half epoch at all four. Resumable:
# run it again to continue (finished runs are skipped, the others resume from a checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
COMMON=(--output_dir=results/mnist_info --results=results/mnist_info.csv
        --gin_file=configs/cpu.gin --gin_bindings='train.epochs = 1'
        --gin_bindings='train.max_eval_examples = 10000'
        --gin_bindings='train.checkpoint_every_steps = 200' --parallel=2 --threads_per_run=1)
python -m brokenelbo.sweep "${COMMON[@]}" --betas=1
python -m brokenelbo.sweep "${COMMON[@]}" --betas=0.1
python -m brokenelbo.sweep "${COMMON[@]}" --families=-+v,++v --betas=0.5,2
python -m brokenelbo.sweep "${COMMON[@]}" --families=-+v,++v --betas=0.1,0.5,1,2 \
    --anneal_epochs=0.5
