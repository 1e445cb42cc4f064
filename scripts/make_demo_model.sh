#!/usr/bin/env bash
# The offline demo's shipped tiny CLIP (data/demo_model), from nothing, seeded: two runs of train_demo_model.py.
#   1. 16,000 steps on 8,000 training garments from a fresh model (V3 in the README's table; ~70 min on 2 cores);
#   2. 8,000 more steps on 16,000 garments (the first 8,000 and as many new ones: new shapes, new camera shots),
#      at lr 1e-3 with camera shots from the first step (V5, shipped; ~40 min).
# Usage: bash scripts/make_demo_model.sh [WORK_DIR]   (pools of training pictures are cached in WORK_DIR/pools)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORK=${1:-/tmp/stylishi-demo-model}
mkdir -p "$WORK"
"$PY" scripts/train_demo_model.py --out "$WORK/v3" --steps 16000 --pool 8000 --pool-cache "$WORK/pools" --no-eval
"$PY" scripts/train_demo_model.py --init "$WORK/v3" --pool 16000 --pool-cache "$WORK/pools" --lr 1e-3 \
    --clean-steps 0 --ramp-steps 1 --steps 8000 --out data/demo_model
