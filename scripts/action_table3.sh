#!/usr/bin/env bash
# ReBias Table 3 (Kinetics-10 -> Mimetics-10): every method x seed, then the report (table and CSV).
#
# Environment (defaults = the paper's protocol; the README commands of the original code):
#   TRAIN_ROOT=<required: Kinetics root with train/ and val/>  TRAIN_ANNOTATION=<required: Kinetics JSON or CSV>
#   EVAL_ROOT=<required: Mimetics root with data/>  EVAL_ANNOTATION=../shared/reference/data/mimetics/mimetics_v1.0.csv
#   OUT=results/action_table3  SEEDS="0 1 2"  EPOCHS=120  DEVICE=<auto>  NPROC=1 (>1: torchrun, one process per
#   GPU; --batch_size is per process)  METHODS="Vanilla LearnedMixin RUBi ReBias"  G_PRETRAIN=30
#   EXTRA="<more flags for every run, e.g. --amp bf16 --num_workers 16 --frame_folders true>"  PYTHON=python
# A run whose results.json exists is skipped; one with only last.pth is resumed, so an interrupted sweep resumes.
# A Vanilla run also gives the "Biased" row (its g network, the frame-wise 2D ResNet).
set -euo pipefail
cd "$(dirname "$0")/.."

TRAIN_ROOT=${TRAIN_ROOT:?set TRAIN_ROOT to the Kinetics root (ROOT/train/<label>/..., ROOT/val/<label>/...)}
TRAIN_ANNOTATION=${TRAIN_ANNOTATION:?set TRAIN_ANNOTATION to the Kinetics annotation JSON or CSV}
EVAL_ROOT=${EVAL_ROOT:?set EVAL_ROOT to the Mimetics root (ROOT/data/<label>/...)}
EVAL_ANNOTATION=${EVAL_ANNOTATION:-../shared/reference/data/mimetics/mimetics_v1.0.csv}
OUT=${OUT:-results/action_table3}
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-120}
DEVICE=${DEVICE:-}
NPROC=${NPROC:-1}
METHODS=${METHODS:-"Vanilla LearnedMixin RUBi ReBias"}
G_PRETRAIN=${G_PRETRAIN:-30}
EXTRA=${EXTRA:-}
PYTHON=${PYTHON:-python}

method_flags() {
  case "$1" in
    Vanilla) echo "--f_lambda_outer 0 --g_lambda_inner 0" ;;
    ReBias) echo "" ;;
    LearnedMixin) echo "--outer_criterion LearnedMixin --n_g_pretrain_epochs $G_PRETRAIN --n_g_update 0 --rbf_sigma_x 1 --rbf_sigma_y 1" ;;
    RUBi) echo "--outer_criterion RUBi --g_lambda_inner 0 --rbf_sigma_x 1 --rbf_sigma_y 1" ;;
    *) echo "unknown method '$1' in METHODS (expected Vanilla, LearnedMixin, RUBi, ReBias)" >&2; return 1 ;;
  esac
}

launcher=("$PYTHON")
(( NPROC > 1 )) && launcher=("$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC")
data_flags=(--train_root "$TRAIN_ROOT" --train_annotation_file "$TRAIN_ANNOTATION" --eval_root "$EVAL_ROOT"
            --eval_annotation_file "$EVAL_ANNOTATION")
[[ -n "$DEVICE" ]] && data_flags+=(--device "$DEVICE")

for method in $METHODS; do
  flags=$(method_flags "$method")
  for seed in $SEEDS; do
    name="action_${method}_seed${seed}"
    if [[ -f "$OUT/$name/results.json" ]]; then
      echo "skip $name: results.json exists"
      continue
    fi
    echo "run  $name"
    # shellcheck disable=SC2086
    "${launcher[@]}" main_action.py "${data_flags[@]}" --seed "$seed" --n_epochs "$EPOCHS" \
      --save_dir "$OUT" --run_name "$name" --resume auto $flags $EXTRA
  done
done

$PYTHON scripts/report.py "$OUT" --out "$OUT/report"
