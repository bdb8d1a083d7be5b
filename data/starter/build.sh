#!/usr/bin/env bash
# Rebuild the starter weights the package ships (src/s3t/pretrained/cpu-small): the `cpu-small` recipe,
# seed 0, on the 15-h Debian pre-training corpus in 30-s clips, exported without pickle. On 2 CPU cores
# about 15 minutes of pre-training; on the same torch build the weights come out bit for bit (their
# SHA-256 is in tests/test_starter.py and the model card; config.json differs in its `elapsed` only).
# Usage (root, for the corpus's packages): data/starter/build.sh [CORPUS.csv] [WORK folder]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
manifest="${1:-/tmp/pretrain-corpus.csv}"
work="${2:-/tmp/s3t-starter}"
s3t="${S3T:-$repo/.venv/bin/s3t}"
[ -f "$manifest" ] || bash "$repo/data/pretrain-corpus/build.sh" "$manifest"
"$s3t" prepare "$manifest" --out "$work/clips" --clip-seconds 30 --workers 2 --no-progress
"$s3t" pretrain --data "$work/clips" --out "$work/run" --config cpu-small --resume --no-progress --set train.seed=0
"$s3t" export "$work/run/last.pt" "$work/export" --licence MIT
cp "$work/export/model.safetensors" "$work/export/config.json" "$repo/src/s3t/pretrained/cpu-small/"
sha256sum "$repo/src/s3t/pretrained/cpu-small/model.safetensors"
