#!/usr/bin/env bash
# DisEnt Table 1 sweeps: `scripts/disent_sweep.sh DATASET METHOD` with DATASET in cmnist|cifar10c|bffhq and METHOD in
# vanilla|lff|ours, over the ratios and seeds, with the hyper-parameters of the original scripts (disent_spec §2).
#
# Environment: DATA_DIR=dataset  LOG_DIR=results/disent  SEEDS="0 1 2 3 4"  PERCENTS=<all of the dataset>
#   NUM_STEPS=50000  DEVICE=<auto>  EXTRA="<more flags>"  PYTHON=python
# Runs whose results.json exists are skipped; an interrupted one is resumed (--resume auto). The report follows.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: disent_sweep.sh cmnist|cifar10c|bffhq vanilla|lff|ours}
METHOD=${2:?usage: disent_sweep.sh cmnist|cifar10c|bffhq vanilla|lff|ours}
DATA_DIR=${DATA_DIR:-dataset}
LOG_DIR=${LOG_DIR:-results/disent}
SEEDS=${SEEDS:-"0 1 2 3 4"}
NUM_STEPS=${NUM_STEPS:-50000}
DEVICE=${DEVICE:-}
EXTRA=${EXTRA:-}
PYTHON=${PYTHON:-python}

case "$DATASET" in
  cmnist|cifar10c) PERCENTS=${PERCENTS:-"0.5pct 1pct 2pct 5pct"} ;;
  bffhq) PERCENTS=${PERCENTS:-"0.5pct"} ;;
  *) echo "unknown dataset '$DATASET' (cmnist, cifar10c, bffhq)" >&2; exit 2 ;;
esac

# Flags of the original scripts for one (dataset, ratio, method).
method_flags() {
  local dataset=$1 percent=$2 method=$3 lr_vanilla lr_ours lambdas gamma=0.5
  case "$dataset/$percent" in
    cmnist/*) lr_vanilla=0.01; lr_ours=0.01; lambdas="10 10 1" ;;
    cifar10c/0.5pct) lr_vanilla=0.001; lr_ours=0.0005; lambdas="1 1 1" ;;
    cifar10c/1pct|cifar10c/2pct) lr_vanilla=0.001; lr_ours=0.001; lambdas="5 5 1" ;;
    cifar10c/5pct) lr_vanilla=0.001; lr_ours=0.001; lambdas="1 1 1" ;;
    bffhq/*) lr_vanilla=0.0001; lr_ours=0.0001; lambdas="2 2 0.1"; gamma=0.1 ;;
  esac
  read -r dis_align swap_align swap <<<"$lambdas"
  case "$method" in
    vanilla) echo "--train_vanilla --lr $lr_vanilla" ;;
    lff) echo "--train_lff --lr $lr_vanilla" ;;
    ours) echo "--train_ours --lr $lr_ours --curr_step 10000 --lambda_dis_align $dis_align" \
               "--lambda_swap_align $swap_align --lambda_swap $swap --use_lr_decay --lr_decay_step 10000" \
               "--lr_gamma $gamma" ;;
    *) echo "unknown method '$method' (vanilla, lff, ours)" >&2; return 1 ;;
  esac
}

device_flag=()
[[ -n "$DEVICE" ]] && device_flag=(--device "$DEVICE")

for percent in $PERCENTS; do
  flags=$(method_flags "$DATASET" "$percent" "$METHOD")
  for seed in $SEEDS; do
    exp="${DATASET}_${percent}_${METHOD}_seed${seed}"
    if [[ -f "$LOG_DIR/$DATASET/$exp/results.json" ]]; then
      echo "skip $exp: results.json exists"
      continue
    fi
    echo "run  $exp"
    # shellcheck disable=SC2086
    $PYTHON train_disent.py --dataset "$DATASET" --percent "$percent" --exp "$exp" --seed "$seed" \
      --data_dir "$DATA_DIR" --log_dir "$LOG_DIR" --num_steps "$NUM_STEPS" "${device_flag[@]}" --resume auto \
      $flags $EXTRA
  done
done

$PYTHON scripts/report.py "$LOG_DIR" --out "$LOG_DIR/report" --skip_invalid
