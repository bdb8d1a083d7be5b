#!/usr/bin/env bash
# Unlabeled real-music pre-training corpus (issue 11): game soundtracks from Debian packages, disjoint
# from the dev corpus's six soundtracks and from the reserved held-out packages. Installs the packages
# (about 4 GB of downloads, most of it 0ad-data and redeclipse-data), unpacks the 0 A.D. soundtrack
# from its zip archive into DIR, and writes a manifest (path,package,duration_s) of every audio file of
# at least 30 s: about 15 h.
# Usage (root): data/pretrain-corpus/build.sh OUT.csv [DIR for unpacked files, default /var/tmp/s3t-corpus]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-pretrain-corpus.csv}"
unpack="${2:-/var/tmp/s3t-corpus}"
packages=$(grep -v '^#' "$here/packages.txt" | awk '{print $1}')
apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >/dev/null
py="${PYTHON:-python3}"
"$py" -c "import soundfile" 2>/dev/null || { python3 -m venv /tmp/realmusic-venv && /tmp/realmusic-venv/bin/pip install -q soundfile; py=/tmp/realmusic-venv/bin/python; }
"$py" "$here/make_manifest.py" "$out" "$unpack" $packages
