#!/usr/bin/env bash
# Every method on one folder dataset (main_folder.py, docs/own_dataset.md), then the comparison table.
#
#   DATA=data/folder_cmnist FLAGS="--f mlp --g colour_histogram --preload True" SEEDS="0 1 2" bash scripts/folder_sweep.sh
#
# One run at a time, seed-major. Skip-if-done: a run whose results.json exists is skipped (its flags are not
# compared: give other FLAGS another OUT); an interrupted one continues from its last.pth (--resume auto), refused
# if its flags differ. A run another sweep is training (flock on <run_dir>.lock, the lock the run itself holds,
# utils/run_lock.py) is skipped. Environment: DATA (the dataset folder), FLAGS (main_folder.py flags
# shared by every method: networks, length, optimiser, data pipeline), METHODS (default: all seven), SEEDS,
# OUT (default results/folder/<name of DATA>), PYTHON. The table goes to OUT/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the dataset folder}
FLAGS=${FLAGS:-}
METHODS=${METHODS:-"vanilla biased rebias learnedmixin rubi lff disent"}
SEEDS=${SEEDS:-"0"}
OUT=${OUT:-results/folder/$(basename "$DATA")}
PYTHON=${PYTHON:-python}

for seed in $SEEDS; do
  for method in $METHODS; do
    run="${method}_seed${seed}"
    if [[ -f "$OUT/$run/results.json" ]]; then
      echo "done $OUT/$run"
      continue
    fi
    # shellcheck disable=SC2086  # FLAGS is a list of flags
    mkdir -p "$OUT"
    flock -n -E 75 "$OUT/$run.lock" \
      $PYTHON main_folder.py --data_dir "$DATA" --method "$method" --seed "$seed" --save_dir "$OUT" --run_name "$run" \
      --resume auto --progress False $FLAGS || { status=$?; [[ $status -eq 75 ]] || exit $status; echo "busy $OUT/$run"; }
  done
done
$PYTHON -m utils.folder_report "$OUT" --out "$OUT/report.md"
