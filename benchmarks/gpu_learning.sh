#!/usr/bin/env bash
# Issue 27's GPU learning check (benchmarks/gpu_learning.py): the paper's Swin-T, the hybrid Swin-T
# (resnet stem) and ResNet-50, pre-trained at equal wall time on the compact real-music cache and probed on the dev
# labels beside their Random Init, in about 6 minutes on one H100/H200 with no internet. The cache
# (benchmarks/learning-cache/learning.npz, ignored by git) and .whl travel with the tree:
#
#   python benchmarks/learning_cache.py build --pretrain PT_CACHE --dev DEV_CACHE \
#       --out benchmarks/learning-cache/learning.npz              # here, once
#   bash benchmarks/gpu_learning.sh [--out gpu-learning.json]     # on the GPU machine
#   bash benchmarks/gpu_learning.sh --cpu --cache X.npz --out x.json   # the rehearsal (tests/test_gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_env.sh
exec "$python" benchmarks/gpu_learning.py "$@"
