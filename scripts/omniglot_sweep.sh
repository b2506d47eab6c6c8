#!/usr/bin/env bash
# The Omniglot sweep of the paper's Appendix B (Figures 7 and 8) at the CPU profile, each run
# followed by its information suite. Resumable: run it again to continue (finished runs are
# skipped, the others resume from a checkpoint); its log goes where the caller sends it.
#
# The paper's grid, reduced for a 2-core CPU: betas 0.1 to 1.1 for the PixelCNN families
# (here 0.1, 0.5, 0.9, 1 and 1.1; -+v annealed at 0.1, 0.3, 0.5, 0.7, 0.9, 1 and 1.1, as in
# its Figure 8), 0.9, 1 and 1.1 for the factorized ones, with KL annealing for the PixelCNN
# decoders at beta 1 (the paper's best ELBO: ++- at beta 1, annealed). 60 runs, ordered so
# that a partial sweep already holds the paper's headline settings.
#
# Three epochs of the 17,352 training images (813 steps of 64, about the MNIST sweep's 781),
# KL annealed over the first half of them; the whole test set (13,180 images) evaluated.
set -euo pipefail
cd "$(dirname "$0")/.."
COMMON=(--output_dir=results/omniglot_rd --results=results/omniglot_rd.csv
        --gin_file=configs/omniglot.gin --gin_file=configs/cpu.gin
        --gin_bindings='train.epochs = 3' --gin_bindings='train.eval_every_epochs = 3'
        --gin_bindings='train.checkpoint_every_steps = 200' --parallel=2 --threads_per_run=1)
PIXELCNN=-+-,-++,-+v,++-,+++,++v
python -m brokenelbo.sweep "${COMMON[@]}" --betas=1
python -m brokenelbo.sweep "${COMMON[@]}" --families=$PIXELCNN --betas=1 --anneal_epochs=1.5
python -m brokenelbo.sweep "${COMMON[@]}" --betas=0.9,1.1
python -m brokenelbo.sweep "${COMMON[@]}" --families=$PIXELCNN --betas=0.1,0.5
python -m brokenelbo.sweep "${COMMON[@]}" --families=-+v --betas=0.1,0.3,0.5,0.7,0.9,1.1 \
    --anneal_epochs=1.5
