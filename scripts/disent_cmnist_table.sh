#!/usr/bin/env bash
# DisEnt Table 1, Colored MNIST rows (Vanilla, LfF, DisEnt x ratios x seeds) for one or more data variants
# (palette:renderer), generating each variant's data first when absent, then the report of every variant.
#
#   bash scripts/disent_cmnist_table.sh                                  # the default variant (lff:lff), all ratios
#   VARIANTS="hues:lff hues:disent_figure lff:lff" PERCENTS=1pct SEEDS=0 bash scripts/disent_cmnist_table.sh
#
# Environment: VARIANTS="lff:lff"  PERCENTS="0.5pct 1pct 2pct 5pct"  SEEDS="0 1 2"  METHODS="vanilla lff ours"
#   MNIST_ROOT=../shared/data  DATA_ROOT=data (data of variant P:R in DATA_ROOT/cmnist_P_R)
#   OUT=results/disent_cmnist (runs of variant P:R in OUT/P_R/cmnist/<exp>)  and what scripts/disent_sweep.sh reads
#   (JOBS, NUM_STEPS, DEVICE, EXTRA, PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANTS=${VARIANTS:-"lff:lff"}
export PERCENTS=${PERCENTS:-"0.5pct 1pct 2pct 5pct"}
export SEEDS=${SEEDS:-"0 1 2"}
METHODS=${METHODS:-"vanilla lff ours"}
MNIST_ROOT=${MNIST_ROOT:-../shared/data}
DATA_ROOT=${DATA_ROOT:-data}
OUT=${OUT:-results/disent_cmnist}
PYTHON=${PYTHON:-python}
EXTRA_GIVEN=${EXTRA:-}

for variant in $VARIANTS; do
  palette=${variant%%:*}
  render=${variant#*:}
  data_dir="$DATA_ROOT/cmnist_${palette}_${render}"
  for percent in $PERCENTS; do
    if [[ ! -f "$data_dir/cmnist/$percent/manifest.json" ]]; then
      $PYTHON -m datasets.make_disent_data cmnist --mnist_root "$MNIST_ROOT" --out "$data_dir" \
        --percents "${percent%pct}" --palette "$palette" --render "$render"
    fi
  done
  DATA_DIR="$data_dir" LOG_DIR="$OUT/${palette}_${render}" REPORT=0 PYTHON="$PYTHON" \
    EXTRA="--palette $palette --render $render $EXTRA_GIVEN" bash scripts/disent_sweep.sh cmnist "$METHODS"
done
$PYTHON scripts/report.py cmnist "$OUT" --out "$OUT/report"
