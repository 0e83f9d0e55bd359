#!/usr/bin/env bash
# The PyTorch package against the CLI (python/tests/parity.py): a virtual environment in
# .build/python-venv with ./python[onnx,tensorboard] (torch, safetensors, numpy, onnx,
# onnxruntime, tensorboard from PyPI), then every SAM's logits compared. Needs the release build
# and the plugins (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    echo "installing python3-venv"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y python3-venv
fi
venv=.build/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "./python[onnx,tensorboard]"
"$venv/bin/python" python/tests/parity.py --lth4sa .build/release/lth4sa
