#!/usr/bin/env bash
# The comparison matrix: every method on every MNIST-family benchmark (utils/matrix.py), one command per family.
#
#   FAMILY=mlp SEEDS="0 1 2" JOBS=2 bash scripts/matrix.sh        # the MLP family on a CPU (several CPU-hours)
#   FAMILY=conv SEEDS="0 1 2" DEVICE=cuda bash scripts/matrix.sh  # the conv family, on a GPU
#
# Skip-if-done and resumable: a cell whose results.json exists is skipped, an interrupted one continues from its
# last.pth (--resume auto), and parallel or concurrent sweeps never run the same cell twice: each takes the cell's
# <run_dir>.lock with flock, the lock every run holds itself (utils/run_lock.py; the child inherits the sweep's;
# a shared cell's paper-table script takes it itself).
# Cells of the benchmarks' own papers (MLP family: Vanilla/LfF on LfF's protocol, Vanilla/LfF/DisEnt on DisEnt's)
# run through the paper tables' scripts and are shared with those tables. Seed-major order: seed 0 everywhere first.
# Variant rows (utils/matrix.py VARIANTS, e.g. the MLP family's rebias_median) run only when METHODS names them.
# Environment: FAMILY (mlp|conv), SEEDS, BENCHMARKS and METHODS (subsets, space-separated), DEVICE (default: cuda if
# available), JOBS (runs at once), THREADS (per run; default cores / JOBS), MNIST_ROOT, OUT (results/matrix),
# PYTHON, REPORT (1: write OUT/report/matrix_<family>.{md,csv,png} at the end), EXTRA (flags appended to every
# main_matrix.py command, e.g. "--n_epochs 1 --steps_per_epoch 5" for a smoke run into another OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${FAMILY:-mlp}
SEEDS=${SEEDS:-"0 1 2"}
BENCHMARKS=${BENCHMARKS:-}
METHODS=${METHODS:-}
DEVICE=${DEVICE:-}
JOBS=${JOBS:-1}
MNIST_ROOT=${MNIST_ROOT:-../shared/data}
OUT=${OUT:-results/matrix}
PYTHON=${PYTHON:-python}
REPORT=${REPORT:-1}
CORES=$(nproc 2>/dev/null || echo 1)
export THREADS=${THREADS:-$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))}
export DEVICE

extra=${EXTRA:-}
[[ -n "$DEVICE" ]] && extra+=" --device $DEVICE"
[[ "$JOBS" -gt 1 ]] && extra+=" --progress False"

$PYTHON -m utils.matrix data --mnist_root "$MNIST_ROOT" --python "$PYTHON" | while IFS=$'\t' read -r dir command; do
  echo "data $dir"
  bash -c "$command"
done

plan=$($PYTHON -m utils.matrix plan --family "$FAMILY" --seeds "$SEEDS" --benchmarks "$BENCHMARKS" \
  --methods "$METHODS" --root "$OUT" --mnist_root "$MNIST_ROOT" --python "$PYTHON" --extra "$extra")

jobs_file=$(mktemp)
trap 'rm -f "$jobs_file"' EXIT
while IFS=$'\t' read -r results command; do
  [[ -z "$results" ]] && continue
  echo "run  $command"
  mkdir -p "$(dirname "$(dirname "$results")")"
  check="test -f $(printf %q "$results") && echo 'skip: finished meanwhile' || $command"
  if [[ "$command" == "$PYTHON main_matrix.py "* ]]; then
    printf 'flock -n -E 75 %q bash -c %q || [ $? -eq 75 ]\n' "$(dirname "$results").lock" "$check" >>"$jobs_file"
  else  # a shared cell: the paper table's script takes the run's lock itself (holding it here would skip the run)
    printf 'bash -c %q\n' "$check" >>"$jobs_file"
  fi
done <<<"$plan"

OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS xargs -P "$JOBS" -I{} -d '\n' bash -c '{}' <"$jobs_file"

if [[ "$REPORT" == 1 ]]; then
  $PYTHON scripts/report.py matrix --family "$FAMILY" --root "$OUT" --out "$OUT/report"
fi
