#!/usr/bin/env bash
# One command for a GPU session, no arguments needed: the CUDA tests, the throughput bench, then paper-length Biased
# MNIST runs (3 stacked seeds each, ReBias and Vanilla at rho 0.997 first) until the time budget runs out, then the
# report. A later session with the same OUT skips what is finished and resumes the run in progress.
#
# Environment: OUT=results/gpu/<device name>  ROOT=../shared/data  BUDGET_MIN=25  PYTHON=python3
# Arguments go to scripts/gpu_session.py (see its docstring): --dry_run runs the same sequence on the CPU with tiny
# limits (OUT then defaults to a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."

args=(--root "${ROOT:-../shared/data}" --budget_min "${BUDGET_MIN:-25}")
[[ -n "${OUT:-}" ]] && args+=(--out "$OUT")
exec "${PYTHON:-python3}" scripts/gpu_session.py "${args[@]}" "$@"
