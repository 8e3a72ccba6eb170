"""Every method on your own biased dataset: images in a folder plus a table (tasks/folder.py, docs/own_dataset.md).

    python main_folder.py --data_dir DIR --method lff [--f resnet18] [--g bagnet] [--image_size 224] [--seed 0]

--data_dir    images and labels in one of the layouts of datasets/folder_data.py (csv metadata.csv
              path,split,target,bias | DisEnt's <id>_<target>_<bias> names under align/conflict/valid/test |
              Waterbirds' metadata.csv | CelebA's list_attr_celeba.txt + list_eval_partition.txt), detected or
              forced by --layout csv|disent|waterbirds|celeba; --target_attr Blond_Hair --bias_attr Male (CelebA)
--method      vanilla | biased | rebias | learnedmixin | rubi (the f/g trainer, with ReBias' Biased MNIST settings,
              utils/matrix.py FG_RECIPES; vanilla's g_0 is also a biased model) | lff | disent (STEP_RECIPES);
              biased trains g's architecture alone as f
--f           resnet18 | resnet50 | simple_conv | mlp (28x28 images);  --g  bagnet | colour_histogram | simple_conv_k1
--init_weights PATH   a local state_dict for the networks of f's architecture (nothing is downloaded)
--image_size S (resize every image to SxS; default: the images' own size)  --normalize none|imagenet|cifar
--augment none|crop_flip|resized_crop_flip   --num_workers N   --cache_images (keep decoded images in memory)
--preload     decode every image once up front into tensors on the training device (small datasets)
--n_epochs E evaluations, every --steps_per_epoch steps (default: one pass over the train split), for every
              method; --lr, --weight_decay, --batch_size, --scheduler none|StepLR (--lr_step_size epochs, --lr_gamma)
--select_on   valid_worst_group (default) | valid_average | test | final: the model reported in "metrics"
Run control as main_matrix.py (--device, --save_dir, --run_name, --resume, --overwrite, --limit_eval_batches,
--progress, --amp, ...). A flag the chosen method does not read is refused.
Outputs: SAVE_DIR/RUN_NAME/{config.json, last.pth, best.pth, results.json}; SAVE_DIR defaults to
results/folder/<name of DATA_DIR>, RUN_NAME to <method><flags>_seed<seed>.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from munch import Munch

from datasets.folder_data import read_folder
from experiment import REBIAS_DEFAULTS, REBIAS_UNTYPED_FLAGS, USER_ERRORS, default_run_name, run_experiment, \
    validate_rebias
from utils.config import build_config, require, run_cli
from utils.matrix import DISENT_CURR_STEP_FRACTION, FG_RECIPES, STEP_RECIPES, ignored_flags

METHODS = {"vanilla": "rebias", "biased": "rebias", "rebias": "rebias", "learnedmixin": "rebias", "rubi": "rebias",
           "lff": "lff", "disent": "disent"}
"""``--method`` -> the METHODS registry name it trains with."""
RECIPES = {**FG_RECIPES, "biased": FG_RECIPES["vanilla"], **STEP_RECIPES}
SUMMARY_METRICS = ("valid", "valid_worst_group", "test", "test_cell_mean", "test_worst_group", "test_aligned",
                   "test_conflicting")

DEFAULTS: dict[str, Any] = {
    **REBIAS_DEFAULTS,
    "n_epochs": 20,
    "scheduler": "none",
    "method": None,
    "dataset": "folder",
    "data_dir": None,
    "layout": None,
    "target_attr": None,
    "bias_attr": None,
    "f": "resnet18",
    "g": "bagnet",
    "init_weights": None,
    "image_size": None,
    "normalize": "none",
    "augment": "none",
    "num_workers": 0,
    "cache_images": False,
    "preload": False,
    "batch_size": 64,
    "drop_last": False,
    "steps_per_epoch": None,
    "lr_gamma": 0.1,
    "select_on": "valid_worst_group",
    "q": 0.7,
    "ema_alpha": 0.7,
    "lambda_dis_align": 1.0,
    "lambda_swap_align": 1.0,
    "lambda_swap": 1.0,
    "curr_step": None,
    "save_dir": None,
}


def method_defaults(method: str) -> dict[str, Any]:
    """:data:`DEFAULTS` with the method's own settings."""
    return {**DEFAULTS, **RECIPES[method]}


def resolve(flags: dict[str, Any]) -> tuple[Munch, str]:
    """The run's configuration and its METHODS registry name; a flag the method would not read is refused."""
    method = flags.get("method")
    require(method in METHODS, f"--method must be one of {list(METHODS)}, got {method!r}")
    ignored = ignored_flags(method, flags)
    require(not ignored, f"--method {method} does not read " + ", ".join(f"--{flag}" for flag in ignored))
    require(flags.get("dataset", "folder") == "folder", "--dataset must be folder for main_folder.py")
    require(flags.get("data_dir") is not None, "--data_dir is required: the folder holding the images and labels")
    defaults = method_defaults(method)
    config = build_config(defaults, flags, untyped=REBIAS_UNTYPED_FLAGS + ("curr_step", "image_size"))
    require(config.image_size is None or (isinstance(config.image_size, int) and config.image_size >= 8),
            f"--image_size must be an integer >= 8, got {config.image_size!r}")
    require(config.num_workers >= 0, f"--num_workers must be >= 0, got {config.num_workers}")
    validate_rebias(config)
    name = default_run_name(method, config, defaults, spelled=("method", "seed", "dataset"))
    config.run_name = config.run_name or f"{name}_seed{config.seed}"
    config.save_dir = config.save_dir or f"results/folder/{Path(config.data_dir).resolve().name}"
    if config.steps_per_epoch is None:
        train_size = len(read_folder(config.data_dir, config.layout, config.target_attr, config.bias_attr,
                                     check_files=False).splits["train"])
        full, rest = divmod(train_size, config.batch_size)
        config.steps_per_epoch = max(1, full if config.drop_last or not rest else full + 1)
    require(config.steps_per_epoch >= 1, "--steps_per_epoch must be a positive integer")
    if METHODS[method] == "rebias":
        return config, "rebias"
    require(config.scheduler in ("StepLR", "none"), "--scheduler must be StepLR or none for lff and disent")
    config.num_steps = config.n_epochs * config.steps_per_epoch
    config.valid_freq = config.steps_per_epoch
    config.use_lr_decay = config.scheduler == "StepLR"
    config.lr_decay_step = config.lr_step_size * config.steps_per_epoch
    if config.curr_step is None:
        config.curr_step = round(DISENT_CURR_STEP_FRACTION * config.num_steps) if method == "disent" else 0
    config.lr_decay_start = 0
    return config, METHODS[method]


DISENT_METHOD_FLAGS = {"train_ours": "disent", "train_vanilla": "vanilla", "train_lff": "lff"}
ORIGINAL_LOGGING_FLAGS = ("log_freq", "save_freq")
"""DisEnt's train.py flags that only set how often it logged and saved: accepted and ignored (this project logs
every evaluation and checkpoints on its own schedule)."""


def from_train_disent(flags: dict[str, Any]) -> dict[str, Any]:
    """``train_disent.py --dataset folder`` flags as main_folder.py flags: --train_ours/--train_vanilla/--train_lff
    -> --method, --num_steps in evaluations of --valid_freq steps, --use_lr_decay/--lr_decay_step -> StepLR every
    lr_decay_step / valid_freq evaluations, --log_dir/--exp -> LOG_DIR/folder/EXP, DisEnt's weight decay (0),
    --log_freq/--save_freq ignored; every other flag is main_folder.py's."""
    flags = {key: value for key, value in flags.items() if key != "dataset"}
    chosen = [flag for flag in DISENT_METHOD_FLAGS if flags.pop(flag, False)]
    require(len(chosen) == 1, "choose exactly one of --train_ours, --train_vanilla, --train_lff")
    num_steps, valid_freq = flags.pop("num_steps", 50000), flags.pop("valid_freq", 500)
    decay_step = flags.pop("lr_decay_step", 10000)
    for flag, value in (("num_steps", num_steps), ("valid_freq", valid_freq), ("lr_decay_step", decay_step)):
        require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"--{flag} must be a positive integer, got {value!r}")
    for flag in ORIGINAL_LOGGING_FLAGS:
        flags.pop(flag, None)
    require(num_steps % valid_freq == 0 and (not flags.get("use_lr_decay") or decay_step % valid_freq == 0),
            "--dataset folder: --num_steps and --lr_decay_step must be multiples of --valid_freq")
    schedule = {"scheduler": "StepLR", "lr_step_size": decay_step // valid_freq} if flags.pop("use_lr_decay", False) \
        else {}
    run = {"save_dir": f"{flags.pop('log_dir', './log')}/folder", "run_name": flags.pop("exp", "debugging")}
    return {"weight_decay": 0.0, **schedule, **flags, **run, "method": DISENT_METHOD_FLAGS[chosen[0]],
            "n_epochs": num_steps // valid_freq, "steps_per_epoch": valid_freq}


def main(**flags: Any) -> None:
    """Train one method on one folder dataset; see the module docstring for the flags."""
    config, registry_name = resolve(flags)
    results = run_experiment("folder", registry_name, config, defaults=method_defaults(config.method))
    if results is None:
        return
    metrics = results["metrics"]
    selected = results["selected"]["by"] if isinstance(results["selected"], dict) else "final"
    print(f"{config.method} ({results['method']}) on {config.data_dir}, seed {config.seed}, selected by {selected}: "
          + "  ".join(f"{key}={metrics[key]:.2f}" for key in SUMMARY_METRICS if key in metrics))
    print(f"results: {config.save_dir}/{config.run_name}/results.json")


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)
