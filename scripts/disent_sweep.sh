#!/usr/bin/env bash
# DisEnt Table 1 sweeps: `scripts/disent_sweep.sh DATASET "METHODS"` with DATASET in cmnist|cifar10c|bffhq and METHODS
# one or more of vanilla|lff|ours (quoted, space-separated), over the ratios and seeds, with the hyper-parameters of
# the original scripts (disent_spec §2), or with LfF's own protocol (PROTOCOL=lff_paper: train_disent.py's preset).
#
# Environment: DATA_DIR=dataset  LOG_DIR=results/disent  SEEDS="0 1 2 3 4"  PERCENTS=<all of the dataset>
#   NUM_STEPS=<the protocol's: 50000, or the preset's>  PROTOCOL=disent|lff_paper  DEVICE=<auto>
#   JOBS=1 (runs in parallel; each gets THREADS=<cores / JOBS> intra-op threads)  EXTRA="<more flags>"
#   REPORT=1 (0: no report at the end)  PYTHON=python
# Runs whose results.json exists are skipped, and so are runs another process is training (flock on <run_dir>.lock,
# the lock train_disent.py itself holds for a run: utils/run_lock.py; the child inherits the sweep's);
# an interrupted one is resumed (--resume auto). The report follows.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${1:?usage: disent_sweep.sh cmnist|cifar10c|bffhq \"vanilla lff ours\"}
METHODS=${2:?usage: disent_sweep.sh cmnist|cifar10c|bffhq \"vanilla lff ours\"}
DATA_DIR=${DATA_DIR:-dataset}
LOG_DIR=${LOG_DIR:-results/disent}
SEEDS=${SEEDS:-"0 1 2 3 4"}
PROTOCOL=${PROTOCOL:-disent}
NUM_STEPS=${NUM_STEPS:-}
DEVICE=${DEVICE:-}
JOBS=${JOBS:-1}
EXTRA=${EXTRA:-}
REPORT=${REPORT:-1}
PYTHON=${PYTHON:-python}
CORES=$(nproc 2>/dev/null || echo 1)
THREADS=${THREADS:-$(( CORES / JOBS > 0 ? CORES / JOBS : 1 ))}

case "$DATASET" in
  cmnist|cifar10c) PERCENTS=${PERCENTS:-"0.5pct 1pct 2pct 5pct"} ;;
  bffhq) PERCENTS=${PERCENTS:-"0.5pct"} ;;
  *) echo "unknown dataset '$DATASET' (cmnist, cifar10c, bffhq)" >&2; exit 2 ;;
esac
case "$PROTOCOL" in
  disent|lff_paper) ;;
  *) echo "unknown protocol '$PROTOCOL' (disent, lff_paper)" >&2; exit 2 ;;
esac

# Flags of the original scripts for one (dataset, ratio, method); under PROTOCOL=lff_paper the preset sets them.
method_flags() {
  local dataset=$1 percent=$2 method=$3 lr_vanilla lr_ours lambdas gamma=0.5
  if [[ "$PROTOCOL" == lff_paper ]]; then
    case "$method" in
      vanilla) echo "--preset lff_paper --train_vanilla" ;;
      lff) echo "--preset lff_paper --train_lff" ;;
      *) echo "method '$method' has no lff_paper protocol (vanilla, lff)" >&2; return 1 ;;
    esac
    return
  fi
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

common=(--dataset "$DATASET" --data_dir "$DATA_DIR" --log_dir "$LOG_DIR" --resume auto)
[[ -n "$DEVICE" ]] && common+=(--device "$DEVICE")
[[ -n "$NUM_STEPS" ]] && common+=(--num_steps "$NUM_STEPS")
[[ "$JOBS" -gt 1 ]] && common+=(--progress False)

jobs_file=$(mktemp)
trap 'rm -f "$jobs_file"' EXIT
for percent in $PERCENTS; do
  for method in $METHODS; do
    flags=$(method_flags "$DATASET" "$percent" "$method")
    for seed in $SEEDS; do
      exp="${DATASET}_${percent}_${method}_seed${seed}"
      if [[ -f "$LOG_DIR/$DATASET/$exp/results.json" ]]; then
        echo "skip $exp: results.json exists"
        continue
      fi
      echo "run  $exp"
      mkdir -p "$LOG_DIR/$DATASET"
      # shellcheck disable=SC2086
      command=$(printf '%q ' "$PYTHON" train_disent.py "${common[@]}" --percent "$percent" --exp "$exp" \
        --seed "$seed" $flags $EXTRA)
      # Under the run's lock (held by a sweep training it: flock's status 75, skipped), a run that another sweep
      # finished meanwhile is skipped too.
      results=$(printf %q "$LOG_DIR/$DATASET/$exp/results.json")
      check="test -f $results && echo 'skip $exp: finished meanwhile' || exec $command"
      printf 'flock -n -E 75 %q bash -c %q || [ $? -eq 75 ]\n' "$LOG_DIR/$DATASET/$exp.lock" "$check" >>"$jobs_file"
    done
  done
done

OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS xargs -P "$JOBS" -I{} -d '\n' bash -c '{}' <"$jobs_file"

if [[ "$REPORT" == 1 ]]; then
  $PYTHON scripts/report.py "$LOG_DIR" --out "$LOG_DIR/report" --skip_invalid
fi
