#!/usr/bin/env bash
# What attaching a SAM costs in training (issue 9): plain network, Full-SA (the SAM at every
# block) and supernet training (the SAM at every block, a random sub-network per step),
# alternating within each round on the same machine, `lth4sa bench train` at batch 128.
#   scripts/bench_sam_training.sh [ROUNDS] [SAM] [MODELS...]   (default 3 rounds, SE, resnet38 resnet164)
# Prints every run, then per model the median images/s of each kind over the rounds and the
# median over rounds of each round's ratio to the plain network (+x% = slower). The supernet
# warms up for 8 steps: a block allocates its buffers for each state (with and without its
# SAM) the first time it runs in it, and after 8 random schemes nearly every block has run in both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; SAM=${2:-plugins/libSE.so}; shift 2 || shift $# || true
MODELS=("${@:-resnet38 resnet164}"); MODELS=(${MODELS[@]})
BIN=.build/release/lth4sa
rate() { sed -n 's/.*median step [0-9.]* ms, \([0-9.]*\) images\/s.*/\1/p'; }
for model in "${MODELS[@]}"; do
    if [ "$model" = resnet164 ]; then steps=(--warmup 2 --steps 4); else steps=(--warmup 3 --steps 8); fi
    rows=""
    for r in $(seq "$ROUNDS"); do
        plain=$("$BIN" bench train --model "$model" "${steps[@]}" 2>/dev/null | rate)
        full=$("$BIN" bench train --model "$model" "${steps[@]}" --sam "$SAM" 2>/dev/null | rate)
        super=$("$BIN" bench train --model "$model" "${steps[@]}" --warmup 8 --sam "$SAM" --supernet 2>/dev/null | rate)
        echo "$model round $r: plain $plain, Full-SA $full, supernet $super images/s"
        rows+="$plain $full $super"$'\n'
    done
    echo -n "$rows" | python3 -c '
import statistics as st, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
p, f, s = (st.median(c) for c in zip(*rows))
slower = lambda i: st.median(r[0] / r[i] - 1 for r in rows) * 100
print(f"'"$model"': plain {p:.1f}, Full-SA {f:.1f} ({slower(1):+.1f}% time per image), supernet {s:.1f} ({slower(2):+.1f}%) images/s, medians of {len(rows)} rounds")'
done
