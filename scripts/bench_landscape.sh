#!/usr/bin/env bash
# Benchmark of `lth4sa landscape` (issue 5): all 4096 schemes of ResNet-38 + SE through a
# supernet on 1,000 validation images, with prefix sharing, and the speed-up over evaluating
# every scheme from the stem (measured on N evenly spaced schemes and scaled to 4096).
#   scripts/bench_landscape.sh [RUN_DIR] [N]      (default runs/bench-landscape-r38, 256)
# Trains the supernet first when RUN_DIR has none (6 epochs on synthetic:4000, about 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/bench-landscape-r38}
N=${2:-256}
BIN=.build/release/lth4sa
if [ ! -f "$RUN/supernet/summary.json" ]; then
    "$BIN" supernet train --model resnet38 --sam plugins/libSE.so --data synthetic:4000 --val-per-class 100 \
        --epochs 6 --lr 0.05 --warmup-epochs 1 -o "$RUN/supernet"
fi
rm -rf "$RUN/landscape" "$RUN/landscape-noshare"
"$BIN" landscape -o "$RUN" --mark 1111-1111-1111 --mark 0000-0000-0000 --mark 1010-1010-1010 | tail -n 8
"$BIN" landscape -o "$RUN" --no-share --limit "$N" | head -n 1
python3 - "$RUN" <<'PY'
import json, sys
run = sys.argv[1]
share = json.load(open(f"{run}/landscape/landscape.json"))
plain = json.load(open(f"{run}/landscape-noshare/landscape.json"))
n_all, n_plain = share["schemes"], plain["schemes"]
t_share, t_plain = share["seconds_this_run"], plain["seconds_this_run"] / n_plain * n_all
print(f"prefix sharing: {n_all} schemes in {t_share / 60:.1f} min ({share['blocks_run_this_run']} blocks run)")
print(f"from the stem:  {n_plain} schemes in {plain['seconds_this_run']:.0f} s -> {t_plain / 60:.1f} min for {n_all} "
      f"({plain['blocks_run_this_run'] / n_plain * n_all:.0f} blocks)")
print(f"speed-up from prefix sharing: {t_plain / t_share:.2f}x")
PY
