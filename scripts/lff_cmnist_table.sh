#!/usr/bin/env bash
# LfF's own Colored MNIST table (Nam et al. 2020): Vanilla and LfF at LfF's four ratios, with LfF's protocol
# (train_disent.py --preset lff_paper) on data made with LfF's protocol (make_disent_data --preset lff_paper),
# generated first when absent; then the report.
#
# Environment: PERCENTS="0.5pct 1pct 2pct 5pct"  SEEDS="0 1 2"  MNIST_ROOT=../shared/data
#   DATA_DIR=data/cmnist_lff_paper  OUT=results/lff_cmnist  and what scripts/disent_sweep.sh reads (JOBS, DEVICE ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PERCENTS=${PERCENTS:-"0.5pct 1pct 2pct 5pct"}
export SEEDS=${SEEDS:-"0 1 2"}
MNIST_ROOT=${MNIST_ROOT:-../shared/data}
DATA_DIR=${DATA_DIR:-data/cmnist_lff_paper}
OUT=${OUT:-results/lff_cmnist}
PYTHON=${PYTHON:-python}

for percent in $PERCENTS; do
  if [[ ! -f "$DATA_DIR/cmnist/$percent/manifest.json" ]]; then
    $PYTHON -m datasets.make_disent_data cmnist --mnist_root "$MNIST_ROOT" --out "$DATA_DIR" \
      --percents "${percent%pct}" --preset lff_paper
  fi
done
DATA_DIR="$DATA_DIR" LOG_DIR="$OUT" PROTOCOL=lff_paper REPORT=0 PYTHON="$PYTHON" \
  bash scripts/disent_sweep.sh cmnist "vanilla lff"
$PYTHON scripts/report.py lff "$OUT" --out "$OUT/report"
