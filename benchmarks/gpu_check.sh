#!/usr/bin/env bash
# The one prepared GPU check (issue 13): every number of the GPU path in one JSON, in <= 8 minutes on
# one H100/H200 that has PyTorch and timm but no internet (and none of soundfile, soxr, cffi, nnAudio:
# benchmarks/fetch_wheels.sh puts them in .whl beside the tree, which the device tool carries).
#
#   bash benchmarks/gpu_check.sh [--out gpu_check.json]   # on the GPU machine
#   bash benchmarks/gpu_check.sh --cpu --out x.json       # the rehearsal on CPU (tests/test_gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
if ! "$python" -c "import soundfile, soxr, nnAudio" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: soundfile/soxr/nnAudio missing and no .whl: run benchmarks/fetch_wheels.sh first" >&2
    exit 2
  fi
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/s3t-site .whl/*.whl
  export PYTHONPATH="/tmp/s3t-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$python" benchmarks/gpu_check.py "$@"
