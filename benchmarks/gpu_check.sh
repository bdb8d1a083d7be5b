#!/usr/bin/env bash
# The one prepared GPU check (issue 13): every number of the GPU path in one JSON, in <= 8 minutes on
# one H100/H200 that has PyTorch and timm but no internet (and none of soundfile, soxr, cffi, nnAudio:
# benchmarks/fetch_wheels.sh puts them in .whl beside the tree, which the device tool carries).
#
#   bash benchmarks/gpu_check.sh [--out gpu_check.json]   # on the GPU machine
#   bash benchmarks/gpu_check.sh --cpu --out x.json       # the rehearsal on CPU (tests/test_gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_env.sh
exec "$python" benchmarks/gpu_check.py "$@"
