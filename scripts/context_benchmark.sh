#!/usr/bin/env bash
# Ground truth of the synthetic-context benchmark (issue 23): does attention help, and does its
# placement matter? Trains stand-alone networks with `lth4sa train` -- the original, Full-SA and
# schemes of equal connection ratio -- each with the same SEEDS seeds, and prints per scheme the
# mean ± sd test accuracy, how many seeds passed 90% (the task's outcome is nearly two-valued:
# the gate is found, ~100%, or not, ~50%), the paired difference to the original with its 95% interval
# (Student's t over seeds), and per ratio the spread between schemes against the seed noise.
#   scripts/context_benchmark.sh [SEEDS] [OUT]        (default 5 seeds, runs/context-benchmark)
# Environment: MODEL (resnet-basic-14), DATA (synthetic-context:4000), EPOCHS (5), BATCH (32), LR (0.2),
# SAM (plugins/libSE.so), SCHEMES (space-separated; default below). Finished trainings are reused,
# killed ones resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-5}; OUT=${2:-runs/context-benchmark}
MODEL=${MODEL:-resnet-basic-14}; DATA=${DATA:-synthetic-context:4000}; EPOCHS=${EPOCHS:-5}; BATCH=${BATCH:-32}; LR=${LR:-0.2}
SAM=${SAM:-plugins/libSE.so}
# the original and Full-SA first, then schemes of ratio 1/6 and 2/6 in each stage (ResNet-14's 2-2-2 blocks)
SCHEMES=${SCHEMES:-"00-00-00 11-11-11 10-00-00 01-00-00 00-10-00 00-00-01 11-00-00 00-11-00 00-00-11"}
BIN=.build/release/lth4sa
for scheme in $SCHEMES; do
    for seed in $(seq 0 $((SEEDS - 1))); do
        dir="$OUT/$scheme-s$seed"
        [ -f "$dir/summary.json" ] && continue
        resume=(); [ -d "$dir" ] && resume=(--resume)  # a killed training continues
        echo "training $scheme seed $seed"
        "$BIN" train "${resume[@]}" --model "$MODEL" --data "$DATA" --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --val-per-class 50 \
            --sam "$SAM" --scheme "$scheme" --seed "$seed" --output "$dir" >/dev/null 2>&1
    done
done
python3 - "$OUT" "$SEEDS" $SCHEMES <<'PY'
import json, statistics, sys
out, seeds, schemes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]
acc = {s: [json.load(open(f"{out}/{s}-s{k}/summary.json"))["test_accuracy"] for k in range(seeds)] for s in schemes}
def interval(d):
    m = statistics.mean(d)
    if len(d) < 2: return m, float("nan"), float("nan")
    h = T975[min(len(d) - 2, len(T975) - 1)] * statistics.stdev(d) / len(d) ** 0.5
    return m, m - h, m + h
original = schemes[0]
print(f"| scheme | connection ratio | test accuracy (%) per seed | mean ± sd | seeds above 90% | minus the original [95% CI, paired t] |")
print("|---|---|---|---|---|---|")
for s in schemes:
    a = acc[s]; on = s.count("1"); L = s.count("0") + on
    m, lo, hi = interval([x - y for x, y in zip(a, acc[original])])
    sd = statistics.stdev(a) if len(a) > 1 else 0
    print(f"| {s} | {on}/{L} | {', '.join(f'{x:.2f}' for x in a)} | {statistics.mean(a):.2f} ± {sd:.2f} | {sum(x > 90 for x in a)}/{len(a)} | "
          + ("-" if s == original else f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]") + " |")
print()
by_ratio = {}
for s in schemes:
    by_ratio.setdefault(s.count("1"), []).append(s)
for on, group in sorted(by_ratio.items()):
    if len(group) < 2: continue
    means = {s: statistics.mean(acc[s]) for s in group}
    best, worst = max(means, key=means.get), min(means, key=means.get)
    noise = statistics.mean(statistics.stdev(acc[s]) for s in group) if seeds > 1 else float("nan")
    m, lo, hi = interval([x - y for x, y in zip(acc[best], acc[worst])])
    print(f"ratio {on}/{len(group[0].replace('-', ''))}: spread between schemes {means[best] - means[worst]:.2f} points "
          f"(best {best} {means[best]:.2f}, worst {worst} {means[worst]:.2f}; paired difference {m:+.2f} [{lo:+.2f}, {hi:+.2f}]), "
          f"mean seed sd {noise:.2f}")
PY
