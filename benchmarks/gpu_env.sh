# Sourced by the prepared GPU scripts (gpu_check.sh, gpu_learning.sh), from the repository root: picks the
# Python (the project's .venv if there is one), installs the wheels that travel in .whl when soundfile, soxr
# or nnAudio are missing (a GPU machine with PyTorch and timm but no internet; benchmarks/fetch_wheels.sh
# fills .whl), and puts src/ on the path. Sets $python.
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
if ! "$python" -c "import soundfile, soxr, nnAudio" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "$0: soundfile/soxr/nnAudio missing and no .whl: run benchmarks/fetch_wheels.sh first" >&2
    exit 2
  fi
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/s3t-site .whl/*.whl
  export PYTHONPATH="/tmp/s3t-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
