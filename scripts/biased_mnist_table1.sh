#!/usr/bin/env bash
# ReBias Table 1 (Biased MNIST): every method x rho x seed, then the report (table, CSV, plots).
#
# Environment (defaults = the paper's protocol):
#   ROOT=../shared/data  OUT=results/biased_mnist_table1  SEEDS="0 1 2"  EPOCHS=80  DEVICE=<auto>
#   RHOS="0.999 0.997 0.995 0.99"  METHODS="Vanilla LearnedMixin RUBi ReBias"  G_PRETRAIN=5
#   EXTRA="<more flags for every run, e.g. --limit_train_batches 50>"  PYTHON=python
#   STACK_SEEDS=0 (1: the unfinished seeds of a method and rho train in one process, main_biased_mnist.py --seeds)
#   REPORT_FLAGS="" (e.g. --include_shortened: the report also shows runs shorter than the paper's, labelled)
# A run whose results.json exists is skipped; one with only last.pth is resumed, so an interrupted sweep resumes.
# A Vanilla run also gives the "Biased" column (its g network).
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${ROOT:-../shared/data}
OUT=${OUT:-results/biased_mnist_table1}
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-80}
DEVICE=${DEVICE:-}
RHOS=${RHOS:-"0.999 0.997 0.995 0.99"}
METHODS=${METHODS:-"Vanilla LearnedMixin RUBi ReBias"}
G_PRETRAIN=${G_PRETRAIN:-5}
EXTRA=${EXTRA:-}
STACK_SEEDS=${STACK_SEEDS:-0}
PYTHON=${PYTHON:-python}
REPORT_FLAGS=${REPORT_FLAGS:-}

method_flags() {
  case "$1" in
    Vanilla) echo "--f_lambda_outer 0 --g_lambda_inner 0" ;;
    ReBias) echo "" ;;
    LearnedMixin) echo "--outer_criterion LearnedMixin --g_lambda_inner 0 --n_g_pretrain_epochs $G_PRETRAIN --n_g_update 0" ;;
    RUBi) echo "--outer_criterion RUBi --g_lambda_inner 0" ;;
    *) echo "unknown method '$1' in METHODS (expected Vanilla, LearnedMixin, RUBi, ReBias)" >&2; return 1 ;;
  esac
}

device_flag=()
[[ -n "$DEVICE" ]] && device_flag=(--device "$DEVICE")

train() {  # train RUN_NAME [more flags]: one run of the current method and rho
  local name=$1
  shift
  # shellcheck disable=SC2086
  $PYTHON main_biased_mnist.py --root "$ROOT" --train_correlation "$rho" --n_epochs "$EPOCHS" \
    "${device_flag[@]}" --save_dir "$OUT" --run_name "$name" --resume auto "$@" $flags $EXTRA
}

for method in $METHODS; do
  flags=$(method_flags "$method")
  for rho in $RHOS; do
    base="biased_mnist_${method}_rho${rho}"
    pending=()
    for seed in $SEEDS; do
      if [[ -f "$OUT/${base}_seed${seed}/results.json" ]]; then
        echo "skip ${base}_seed${seed}: results.json exists"
      else
        pending+=("$seed")
      fi
    done
    (( ${#pending[@]} )) || continue
    if [[ "$STACK_SEEDS" == 1 ]]; then
      seeds=$(IFS=,; echo "${pending[*]}")
      echo "run  ${base}_seed{${seeds}} in one process"
      train "$base" --seeds "$seeds"
    else
      for seed in "${pending[@]}"; do
        echo "run  ${base}_seed${seed}"
        train "${base}_seed${seed}" --seed "$seed"
      done
    fi
  done
done

# shellcheck disable=SC2086
$PYTHON scripts/report.py "$OUT" --out "$OUT/report" $REPORT_FLAGS
