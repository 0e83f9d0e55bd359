#!/usr/bin/env bash
# Fuzzes the three file parsers (.npy, safetensors, CIFAR) with libFuzzer + AddressSanitizer
# for SECONDS each (default 60), starting from the seed corpus in Fuzz/corpus/<target> (new
# inputs go to a scratch copy, the repository's corpus is not changed). Prints executions and
# crashes per target; exits non-zero on any crash (the crashing input is kept in .build-fuzz/).
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
seconds=${1:-60}
build=.build-fuzz
swift build -c release --product lth4sa-fuzz --build-path "$build" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 | tail -n 1
binary="$build/release/lth4sa-fuzz"
status=0
for target in npy safetensors cifar; do
    work="$build/work-$target"
    rm -rf "$work" && mkdir -p "$work/corpus" "$work/crashes"
    cp Fuzz/corpus/$target/* "$work/corpus/"
    log="$work/fuzz.log"
    set +e
    LTH4SA_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no "$binary" "$work/corpus" \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$work/crashes/" -print_final_stats=1 > "$log" 2>&1
    code=$?
    set -e
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    crashes=$(ls "$work/crashes" | wc -l)
    echo "fuzz $target: ${execs:-?} executions in ${seconds}s, $crashes crash(es), exit $code"
    if [ "$code" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        status=1
        tail -n 30 "$log"
    fi
done
exit $status
