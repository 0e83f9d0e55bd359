#!/usr/bin/env bash
# What bounds training and inference speed on this machine, measured by small C probes
# (scripts/probes/) against the same libraries lth4sa links:
#   - the DRAM bandwidth of element-wise passes over tensors larger than the L3 (what a
#     batch-norm or join pass over a batch-wide activation can reach), 1 thread and all cores;
#   - whether oneDNN can apply an SE attention's per-(image, channel) scale inside a
#     convolution (a [N, C, 1, 1] binary post-op): its implementation, error and time, against
#     one call per image with a per-channel operand and the plain batched convolution;
#   - the rate of a large SGEMM (`lth4sa bench gemm`), the yardstick for `bench train`'s and
#     `bench infer`'s GFLOP/s.
# Needs gcc and the packages of scripts/setup.sh; builds lth4sa first if missing. With
# ONEDNN_INCLUDE and ONEDNN_LIB (folders of another oneDNN's headers and libdnnl.so) the post-op
# probe also runs against that one, e.g. oneDNN 3.2 from PyPI: `pip download --no-deps
# onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0`, unzip both wheels, and point the
# two variables at the `data/include` and `data/lib` folders inside them.
#   scripts/probe_limits.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
[ -x .build/release/lth4sa ] || swift build -c release --product lth4sa
gcc -O3 -march=native -fopenmp -Wall scripts/probes/memory_bandwidth.c -o "$OUT/memory_bandwidth"
gcc -O2 -Wall scripts/probes/scale_post_op.c -ldnnl -lm -o "$OUT/scale_post_op"
echo "== DRAM bandwidth (128 MB arrays)"
OMP_NUM_THREADS=1 "$OUT/memory_bandwidth"
OMP_NUM_THREADS=$(nproc) "$OUT/memory_bandwidth"
echo "== oneDNN $(sed -n 's/#define DNNL_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' /usr/include/oneapi/dnnl/dnnl_version.h | paste -sd.): a per-(image, channel) scale in a 1x1 convolution, 4 images, 1 thread"
echo "-- ResNet-38 stage 3 (64 -> 256 channels, 8x8)"
OMP_NUM_THREADS=1 "$OUT/scale_post_op" 4 64 256 8
echo "-- ResNet-38 stage 1 (16 -> 64 channels, 32x32)"
OMP_NUM_THREADS=1 "$OUT/scale_post_op" 4 16 64 32
INC=${ONEDNN_INCLUDE:-}
LIB=${ONEDNN_LIB:-}
if [ -n "$INC" ] && [ -n "$LIB" ]; then
    gcc -O2 -Wall scripts/probes/scale_post_op.c -I"$INC" -L"$LIB" -Wl,-rpath,"$LIB" -ldnnl -lm -o "$OUT/scale_post_op_other"
    echo "== oneDNN $(sed -n 's/#define DNNL_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' "$INC/oneapi/dnnl/dnnl_version.h" | paste -sd.) from $LIB: the same"
    OMP_NUM_THREADS=1 "$OUT/scale_post_op_other" 4 64 256 8
    OMP_NUM_THREADS=1 "$OUT/scale_post_op_other" 4 16 64 32
fi
echo "== large SGEMM"
.build/release/lth4sa bench gemm --size 2048 --threads "$(nproc)"
