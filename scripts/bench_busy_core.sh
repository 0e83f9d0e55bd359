#!/usr/bin/env bash
# Training with the last core taken by another process (`yes` pinned to it), lth4sa against
# PyTorch's best CPU configuration (channels_last, malloc fix, torch.set_num_threads(2) as in
# the peer benchmark), alternating in one run, batch 128 (issue 9). lth4sa runs twice: with
# its default thread count (the cores found free at start) and forced to every core.
#   scripts/bench_busy_core.sh PYTHON_WITH_TORCH TORCH_BENCH_PY [ROUNDS] [MODEL]   (default 2, resnet38)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$1; TB=$2; ROUNDS=${3:-2}; MODEL=${4:-resnet38}
BIN=.build/release/lth4sa
OUT=$(mktemp -d)
LAST=$(( $(nproc) - 1 ))
taskset -c "$LAST" yes > /dev/null &
HOG=$!
trap 'kill $HOG; rm -rf "$OUT"' EXIT
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
rate() { sed -n 's/.*median step [0-9.]* ms, \([0-9.]*\) images\/s.*/\1/p'; }
printf "%-10s %-6s %18s %18s %12s\n" model round "lth4sa default" "lth4sa all cores" "torch"
for round in $(seq "$ROUNDS"); do
    auto=$("$BIN" bench train --model "$MODEL" --warmup 2 --steps 6 2>/dev/null | rate)
    all=$("$BIN" bench train --model "$MODEL" --warmup 2 --steps 6 --threads "$(nproc)" 2>/dev/null | rate)
    "$PY" "$TB" --worker train --model "$MODEL" --batch 128 --warmup 2 --steps 6 --channels-last --result-file "$OUT/t.json" >/dev/null 2>&1
    torch=$(python3 -c "import json; print(round(json.load(open('$OUT/t.json'))['images_per_s_median'], 1))")
    printf "%-10s %-6s %18s %18s %12s   (images/s)\n" "$MODEL" "$round" "$auto" "$all" "$torch"
done
