#!/usr/bin/env bash
# One job on an offline GPU node (scripts/gpu_node.py's docstring says what runs, in which order, what comes back):
#
#   OUT=DIR ROOT=MNIST_ROOT DEADLINE_S=570 bash scripts/gpu_node.sh [--dry_run]
#
# Environment: OUT (required: the folder that comes back), ROOT=.node/mnist (scripts/gpu_node_bundle.sh gzips MNIST
# there), DEADLINE_S=570 (counted from this script's start), STATE=.node/state (runs and checkpoints, kept on the
# node), RESUME_FROM (an earlier job's OUT, carried: its runs continue), AMP=bf16|none, PYTHON=python3,
# SITE=/tmp/gpu_node_site (where the carried wheels in .whl/ are installed when a module is missing).
set -euo pipefail
started_at=$(date +%s.%N)
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/gpu_node_site}
if [[ -d .whl ]] && ! "$PYTHON" -c "import fire, termcolor, munch, adamp" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
args=(--out "${OUT:?set OUT to the folder that comes back}" --root "${ROOT:-.node/mnist}"
      --deadline_s "${DEADLINE_S:-570}" --started_at "$started_at" --amp "${AMP:-bf16}")
[[ -n "${STATE:-}" ]] && args+=(--state "$STATE")
[[ -n "${RESUME_FROM:-}" ]] && args+=(--resume_from "$RESUME_FROM")
exec "$PYTHON" scripts/gpu_node.py "${args[@]}" "$@"
