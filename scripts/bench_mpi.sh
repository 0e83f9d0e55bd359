#!/usr/bin/env bash
# Data-parallel scaling on this machine and a projection to more nodes (issue 13).
#   scripts/bench_mpi.sh [ROUNDS] [MODELS...]     (default 3 rounds; resnet38 resnet164)
# Per model, alternating within each round: one process with all cores as threads, then
# `mpirun -np RANKS --bind-to core` with one thread per rank (RANKS = cores), both at global
# batch 128 (`lth4sa bench train`). Prints medians over rounds, the ratio, the allreduce's
# share of a step, and a projection to N nodes of this machine's speed over a network:
#   step(N) = compute(128) / N + allreduce,  allreduce = 2 (N-1)/N x 4 P bytes / bandwidth
#             + 2 (N-1) x latency   (ring allreduce; P parameters; compute assumed linear in batch)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}; shift || true
MODELS=("${@:-resnet38 resnet164}"); MODELS=(${MODELS[@]})
BIN=.build/release/lth4sa
CORES=$(nproc)
MPI=(mpirun --bind-to core -np "$CORES")
[ "$(id -u)" -eq 0 ] && MPI=(mpirun --allow-run-as-root --bind-to core -np "$CORES")
field() { sed -n "s/.*$1.*/\1/p" | head -n 1; }  # prints the first capture of pattern $1
for model in "${MODELS[@]}"; do
    single=(); ranks=(); shares=(); params=0
    for r in $(seq "$ROUNDS"); do
        out=$("$BIN" bench train --model "$model" --batch 128 --threads "$CORES" 2>/dev/null)
        single+=("$(echo "$out" | field 'median step [0-9.]* ms, \([0-9.]*\) images\/s')")
        params=$(echo "$out" | field '(\([0-9]*\) parameters)')
        out=$("${MPI[@]}" "$BIN" bench train --model "$model" --batch 128 --threads 1 2>/dev/null)
        ranks+=("$(echo "$out" | field 'median step [0-9.]* ms, \([0-9.]*\) images\/s')")
        shares+=("$(echo "$out" | field 'per step (\([0-9.]*\)% of the step)')")
        echo "$model round $r: 1 process x $CORES threads ${single[-1]} img/s, $CORES ranks x 1 thread ${ranks[-1]} img/s (allreduce ${shares[-1]}% of a step)"
    done
    printf '%s\n' "${single[@]}" > /tmp/lth4sa-single.$$; printf '%s\n' "${ranks[@]}" > /tmp/lth4sa-ranks.$$; printf '%s\n' "${shares[@]}" > /tmp/lth4sa-shares.$$
    awk -v model="$model" -v cores="$CORES" -v P="$params" '
        function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        FILENAME ~ /single/ { s[++ns] = $1 } FILENAME ~ /ranks/ { r[++nr] = $1 } FILENAME ~ /shares/ { c[++nc] = $1 }
        END {
            ms = median(s, ns); mr = median(r, nr); mc = median(c, nc)
            printf "%s: median %.1f img/s (1 process x %d threads) vs %.1f img/s (%d ranks x 1 thread): ratio %.2f; allreduce %.1f%% of a step; %.2f MB of gradients\n", model, ms, cores, mr, cores, mr / ms, mc, P * 4 / 1e6
            compute = 128 / mr * (1 - mc / 100)   # seconds of computation per step of 128 images on this machine
            printf "projection to N nodes like this one (img/s; allreduce share of a step in parentheses):\n"
            printf "| nodes | batch 128 in all, 10 GbE | batch 128 in all, 100 Gb/s | batch 128 per node, 10 GbE | batch 128 per node, 100 Gb/s |\n|---|---|---|---|---|\n"
            split("1.25e9 12.5e9", bw, " "); split("50e-6 5e-6", lat, " ")
            for (n = 1; n <= 32; n *= 2) {
                for (k = 1; k <= 2; k++) ar[k] = n > 1 ? 2 * (n - 1) / n * P * 4 / bw[k] + 2 * (n - 1) * lat[k] : 0
                printf "| %d | %.0f (%.1f%%) | %.0f (%.1f%%) | %.0f (%.1f%%) | %.0f (%.1f%%) |\n", n,
                    128 / (compute / n + ar[1]), 100 * ar[1] / (compute / n + ar[1]), 128 / (compute / n + ar[2]), 100 * ar[2] / (compute / n + ar[2]),
                    128 * n / (compute + ar[1]), 100 * ar[1] / (compute + ar[1]), 128 * n / (compute + ar[2]), 100 * ar[2] / (compute + ar[2])
            }
        }' /tmp/lth4sa-single.$$ /tmp/lth4sa-ranks.$$ /tmp/lth4sa-shares.$$
    rm -f /tmp/lth4sa-single.$$ /tmp/lth4sa-ranks.$$ /tmp/lth4sa-shares.$$
done
