#!/usr/bin/env bash
# The wheels the GPU machine lacks (it has PyTorch, timm, numpy, scipy, scikit-learn, matplotlib, tqdm,
# PyYAML, safetensors, huggingface_hub, numba; not these, nor librosa, the CQT's speed reference and
# what it needs beyond them), for its Python 3.12 on x86-64, into .whl
# (ignored by git; the device tool carries it: `carry: [".whl"]`). Run here, once, before a lease.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl \
  soundfile==0.14.0 soxr==1.1.0 cffi==2.1.1 pycparser==3.12 nnAudio==0.3.4 \
  librosa==0.11.0 audioread==3.1.0 decorator==5.3.1 pooch==1.9.0 platformdirs==4.14.8
ls -la .whl
