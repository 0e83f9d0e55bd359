#!/usr/bin/env bash
# What attaching a SAM costs in training (issue 9): the plain network, Full-SA (the SAM at every
# block) and supernet training (the SAM at every block, a random sub-network per step), one
# training step of each per round in shuffled order within one process (`lth4sa bench
# sam-training`), so that the machine's drift hits all three alike; batch 128.
#   scripts/bench_sam_training.sh [ROUNDS] [SAM] [MODELS...]   (default 60 rounds, SE, resnet38 resnet164)
# Prints per model the median step time of each and the differences of the medians with their
# 95% bootstrap intervals over the rounds (+x% = slower). Memory: the three networks at once
# (about 9.5 GB for ResNet-164).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-60}; SAM=${2:-plugins/libSE.so}; shift 2 || shift $# || true
MODELS=("${@:-resnet38 resnet164}"); MODELS=(${MODELS[@]})
for model in "${MODELS[@]}"; do
    .build/release/lth4sa bench sam-training --model "$model" --sam "$SAM" --rounds "$ROUNDS" 2>/dev/null
done
