#!/usr/bin/env bash
# DisEnt-vs-LfF-vs-Vanilla accuracy benchmark on Colored MNIST (1 pct by default, one seed), generating the data
# first when absent. The MLP is small: the full 50k-step schedule takes minutes per run even on a 2-core CPU.
# Environment: MNIST_ROOT=../shared/data DATA_DIR=results/disent_data LOG_DIR=results/bench_disent_cmnist
#              PERCENTS=1pct SEEDS=0 NUM_STEPS=50000 (and anything scripts/disent_sweep.sh reads)
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA_DIR=${DATA_DIR:-results/disent_data}
export LOG_DIR=${LOG_DIR:-results/bench_disent_cmnist}
export PERCENTS=${PERCENTS:-1pct}
export SEEDS=${SEEDS:-0}
export EXTRA=${EXTRA:-"--progress False"}
MNIST_ROOT=${MNIST_ROOT:-../shared/data}
for percent in $PERCENTS; do
  if [[ ! -f "$DATA_DIR/cmnist/$percent/manifest.json" ]]; then
    python -m datasets.make_disent_data cmnist --mnist_root "$MNIST_ROOT" --out "$DATA_DIR" \
      --percents "${percent%pct}"
  fi
done
for method in vanilla lff ours; do
  bash scripts/disent_sweep.sh cmnist "$method"
done
