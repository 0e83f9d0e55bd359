#!/usr/bin/env bash
# Inference of the deployed networks (`lth4sa bench infer`, BN folded) against PyTorch's best
# deployment path -- the faster of channels_last eval and TorchScript freeze (BN folded, oneDNN
# fusions) for each network, from the peer benchmark torch_bench.py --worker infer -- alternating
# in one run, batch 50 and batch 1, original network and Full-SE; prints every round's medians
# and the ratios. lth4sa runs with --parallelism $PARALLELISM (operators, the default, or lanes).
#   scripts/bench_infer_vs_torch.sh PYTHON_WITH_TORCH TORCH_BENCH_PY [ROUNDS] [MODELS...]   (default 2; resnet38 resnet164)
# e.g. PARALLELISM=lanes scripts/bench_infer_vs_torch.sh ~/torch-venv/bin/python ../shared/peers/torch_bench.py 3 resnet38
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$1; TB=$2; ROUNDS=${3:-2}; shift 2; shift || true
MODELS=("${@:-resnet38 resnet164}"); MODELS=(${MODELS[@]})
PARALLELISM=${PARALLELISM:-operators}
BIN=${BIN:-.build/release/lth4sa}
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 OMP_NUM_THREADS=2  # PyTorch's malloc fix; 2 threads both
echo "lth4sa --parallelism $PARALLELISM; PyTorch: the faster of channels_last and freeze per network; ISA: $(grep -o -m1 'avx512f' /proc/cpuinfo || echo avx2)${DNNL_MAX_CPU_ISA:+ (DNNL_MAX_CPU_ISA=$DNNL_MAX_CPU_ISA)}"
printf "%-10s %-6s %-6s %12s %12s %8s %12s %12s %8s %9s %9s\n" model batch round "lth4sa ms" "torch ms" ratio "lth4sa SE" "torch SE" "ratio SE" "dT lth4sa" "dT torch"
for round in $(seq "$ROUNDS"); do
    for model in "${MODELS[@]}"; do
        for batch in 50 1; do
            rounds=$([ "$batch" = 50 ] && echo 20 || echo 100)
            "$BIN" bench infer --model "$model" --sam se --batch "$batch" --rounds "$rounds" --threads 2 --parallelism "$PARALLELISM" 2>/dev/null \
                | awk '$1 == "original" || $1 == "Full-SA" {print $1, $3}' > "$OUT/lth4sa-$batch"
        done
        for mode in channels_last freeze; do
            "$PY" "$TB" --worker infer --infer-mode "$mode" --model "$model" --result-file "$OUT/torch-$mode.json" --warmup50 3 --rounds50 15 \
                --warmup1 10 --rounds1 80 >/dev/null 2>&1
        done
        for batch in 50 1; do
            "$PY" - "$OUT/torch-channels_last.json" "$OUT/torch-freeze.json" "$OUT/lth4sa-$batch" "$model" "$batch" "$round" <<'PY'
import json, sys
modes = [json.load(open(f))["batch" + sys.argv[5]]["schemes"] for f in sys.argv[1:3]]
ours = dict(line.split() for line in open(sys.argv[3]))
lo, ls = float(ours["original"]), float(ours["Full-SA"])
to = min(m["original"]["ms_median"] for m in modes)   # PyTorch's best path for each network
ts = min(m["full-SA"]["ms_median"] for m in modes)
print(f"{sys.argv[4]:<10} {sys.argv[5]:<6} {sys.argv[6]:<6} {lo:12.2f} {to:12.2f} {to / lo:7.2f}x {ls:12.2f} {ts:12.2f} {ts / ls:7.2f}x"
      f" {100 * (ls - lo) / lo:+8.1f}% {100 * (ts - to) / to:+8.1f}%")
PY
        done
    done
done
