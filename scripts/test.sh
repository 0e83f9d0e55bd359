#!/usr/bin/env bash
# Builds everything and runs the whole test suite (release mode: numerical tests are slow in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release --build-tests
swift test -c release --skip-build
# the PyTorch package: every SAM's logits equal to the CLI's, ONNX files under onnxruntime too
./scripts/python_parity.sh
# the three file parsers under libFuzzer + AddressSanitizer, 60 s each, from the seed corpus
./scripts/fuzz.sh 60
