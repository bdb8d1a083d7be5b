#!/usr/bin/env bash
# The short-sound dev task (issue 28): installs hydrogen-drumkits (Debian; ~60 MB) and writes its manifest.
# Usage (root): data/short-sounds/build.sh [OUT.csv, default /tmp/short-sounds.csv]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hydrogen-drumkits >/dev/null
"${PYTHON:-python3}" "$here/make_manifest.py" "${1:-/tmp/short-sounds.csv}"
