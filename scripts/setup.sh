#!/usr/bin/env bash
# Installs the Debian packages lth4sa needs (when missing), builds the plugins into plugins/
# and the lth4sa executable in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
packages=(libopenblas-openmp-dev libdnnl-dev libxsmm-dev libffi-dev make gcc libc6-dev binutils libstdc++-12-dev openmpi-bin libopenmpi-dev)  # libxsmm-dev: the fused 1x1 backward's GEMMs (a static library); binutils, libstdc++: linking and the fuzzer runtime (C++); Open MPI: mpirun jobs and their tests
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
make -C Plugins            # the first-party SAM plugins -> plugins/lib<Name>.so
make -C SDK/examples       # the SDK example (CBAM), built from the headers alone -> plugins/libCBAM.so
swift build -c release
