#!/usr/bin/env bash
# Issue 27's GPU learning check (benchmarks/gpu_learning.py): the paper's Swin-T, two hybrid Swin-Ts
# (swin_t_hybrid, swin_t_hybrid32) and ResNet-50, pre-trained at equal wall time (1 minute each) on the compact
# real-music cache and probed on the dev labels beside their Random Init, in about 7 minutes (estimated, not yet
# run on a GPU) on one H100/H200 with no internet. The cache
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
