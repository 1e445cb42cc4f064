#!/usr/bin/env bash
# One-shot set-up on a fresh machine: a virtual environment with the pinned requirements and StyliShi itself
# (editable, so the `stylishi` command runs this checkout: stylishi serve | build | eval).
#   bash scripts/setup.sh          # runtime only (to run the app or build an index)
#   bash scripts/setup.sh --dev    # + test packages and Debian's Chromium for the browser tests
# Idempotent: a second run only checks. Needs Python >= 3.11 (transformers 5).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt -r requirements-scale.txt  # tests: + Milvus Lite, Ray
  if [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi
echo "setup done: $(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
