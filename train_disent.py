"""DisEnt / LfF / Vanilla on Colored MNIST, Corrupted CIFAR-10 and BFFHQ (DisEnt Table 1).

    python train_disent.py --dataset cmnist --exp cmnist_1pct_ours --lr 0.01 --percent 1pct --curr_step 10000 \\
        --lambda_swap 1 --lambda_dis_align 10 --lambda_swap_align 10 --use_lr_decay --lr_decay_step 10000 \\
        --lr_gamma 0.5 --train_ours --tensorboard --wandb

--dataset folder --data_dir DIR: your own dataset, run by main_folder.py (its flags; docs/own_dataset.md).
Flags of the original train.py (defaults as there): --dataset cmnist|cifar10c|bffhq  --percent 0.5pct|1pct|2pct|5pct
  --exp debugging  --lr 1e-3  --weight_decay 0  --num_steps 50000  --valid_freq 500  --curr_step 0  --q 0.7
  (any --num_steps: evaluations at every multiple of --valid_freq and after the last step)
  --lambda_dis_align 1  --lambda_swap_align 1  --lambda_swap 1  --ema_alpha 0.7  --use_lr_decay
  --lr_decay_step 10000  --lr_gamma 0.1  --log_dir ./log  --data_dir dataset  --num_workers 16
  --train_ours | --train_vanilla | --train_lff  --tensorboard  --wandb
  (accepted and ignored, as in the original: --momentum --target_attr_idx --bias_attr_idx --use_type0 --use_type1
   --model --log_freq)
  --save_freq 1000: last.pth (the resume point) is rewritten every save_freq steps, and after every evaluation.
Here also: --batch_size (default: 256 cmnist/cifar10c, 64 bffhq; honoured), --select_on valid|test|final (the model
reported in results.json's "metrics": best on valid (default), best on test (the original's selection, also
--select_on_test) or the last one; every evaluation stays in its "history"), --seed, --device, --amp, --resume,
--flush_denormal (default True: on a CPU, denormal floats are flushed to zero), --limit_train_batches,
--limit_eval_batches, --progress, --channels_last, --compile, --overwrite (a finished run's results.json is never
replaced without it; --resume from its own last.pth continues it).
Colored MNIST data: --palette hues|lff and --render lff|disent_figure say what the data are; generated data whose
manifest records something else are refused. --backbone (default: the dataset's, mlp / resnet18; mlp_lff = LfF's
100-100-100 MLP) and --drop_last (default True, as DisEnt's loader).
--lff_bias_loss gce|ce (--train_lff only; default gce, LfF's): the biased network's loss; ce = plain
cross-entropy, as the authors' BiasEnsemble LfF loop trains f_B (docs/disent_lff_comparison.md).
--preset lff_paper: LfF's own Colored MNIST protocol (see PRESETS; flags given override it).
Outputs: LOG_DIR/DATASET/EXP/{config.json, last.pth, best.pth, results.json}.
"""
from __future__ import annotations

from typing import Any

from datasets.lff_protocols import DEFAULT_PALETTE, DEFAULT_RENDERER, PALETTES, RENDERERS, percent_dirname
from datasets.lff_protocols import PERCENTS as CONFLICTING_PERCENTS
from experiment import COMMON_DEFAULTS, USER_ERRORS, run_experiment, validate_common
from main_folder import from_train_disent, main as folder_main
from methods.disent import LFF_BIAS_LOSSES
from models.disent_models import DISENT_MODELS
from tasks.disent import BATCH_SIZES, NUM_CLASSES
from utils.config import build_config, require, run_cli

DEFAULTS: dict[str, Any] = {
    "dataset": "cmnist",
    "percent": "1pct",
    "exp": "debugging",
    "batch_size": None,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "num_steps": 50000,
    "valid_freq": 500,
    "curr_step": 0,
    "q": 0.7,
    "lambda_dis_align": 1.0,
    "lambda_swap_align": 1.0,
    "lambda_swap": 1.0,
    "ema_alpha": 0.7,
    "use_lr_decay": False,
    "lr_decay_step": 10000,
    "lr_gamma": 0.1,
    "log_dir": "./log",
    "data_dir": "dataset",
    "num_workers": 16,
    "train_ours": False,
    "train_vanilla": False,
    "train_lff": False,
    "select_on_test": False,
    "select_on": None,
    "preset": None,
    "palette": DEFAULT_PALETTE,
    "render": DEFAULT_RENDERER,
    "backbone": None,
    "drop_last": True,
    "momentum": 0.9,
    "target_attr_idx": 0,
    "bias_attr_idx": 1,
    "use_type0": False,
    "use_type1": False,
    "model": "MLP",
    "lff_bias_loss": "gce",
    "log_freq": 500,
    "save_freq": 1000,
    **COMMON_DEFAULTS,
}
PRESETS: dict[str, dict[str, Any]] = {
    "lff_paper": {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 256, "num_steps": 235 * 100, "valid_freq": 235,
                  "use_lr_decay": False, "backbone": "mlp_lff", "drop_last": False, "select_on": "final",
                  "palette": "lff", "render": "lff"},
}
"""``--preset lff_paper``: LfF's own Colored MNIST protocol (alinlab/LfF ``config.py`` ``colored_mnist``, ``train.py``,
``train_vanilla.py``): MLP 100-100-100, Adam lr 1e-3 without decay, batch 256 without drop_last, 235 x 100 steps,
evaluation every 235 steps on the unbiased test split, the last model reported, on data made with
``python -m datasets.make_disent_data cmnist --preset lff_paper``. Flags given on the command line override it."""
PERCENTS = tuple(map(percent_dirname, CONFLICTING_PERCENTS))
"""DisEnt's ratio folders, the ones ``python -m datasets.make_disent_data`` writes: 0.5pct, 1pct, 2pct, 5pct."""
SELECTIONS = ("valid", "test", "final")
SUMMARY_METRICS = ("test", "test_cell_mean", "test_aligned", "test_conflicting", "valid")
METHOD_FLAGS = {"train_ours": "disent", "train_vanilla": "vanilla_disent", "train_lff": "lff"}


def normalise_percent(value: Any) -> str:
    """Accept ``1pct``, ``1`` or ``0.5`` and return DisEnt's folder name (``1pct``, ``0.5pct``)."""
    text = str(value).removesuffix("pct")
    try:
        number = float(text)
    except ValueError:
        return str(value)
    return f"{number:g}pct"


def validate(config) -> str:
    """One-line errors for impossible flags; returns the method's registry name."""
    validate_common(config)
    require(config.dataset in NUM_CLASSES, f"--dataset must be one of {sorted(NUM_CLASSES)}, got {config.dataset!r}")
    require(config.percent in PERCENTS, f"--percent must be one of {PERCENTS}, got {config.percent!r}")
    chosen = [flag for flag in METHOD_FLAGS if config[flag]]
    require(len(chosen) == 1, "choose exactly one of --train_ours, --train_vanilla, --train_lff")
    for flag in ("num_steps", "valid_freq", "batch_size", "lr_decay_step", "save_freq"):
        require(config[flag] >= 1, f"--{flag} must be a positive integer, got {config[flag]}")
    require(config.lr > 0, f"--lr must be positive, got {config.lr}")
    require(config.q > 0, f"--q must be positive, got {config.q}")
    require(0 <= config.ema_alpha <= 1, f"--ema_alpha must lie in [0, 1], got {config.ema_alpha}")
    return METHOD_FLAGS[chosen[0]]


def validate_variant(config) -> None:
    """One-line errors for the flags that say which data, network and selection a run uses."""
    require(config.select_on in SELECTIONS, f"--select_on must be one of {SELECTIONS}, got {config.select_on!r}")
    require(config.palette in PALETTES, f"--palette must be one of {PALETTES}, got {config.palette!r}")
    require(config.render in RENDERERS, f"--render must be one of {RENDERERS}, got {config.render!r}")
    require(config.backbone is None or config.backbone in DISENT_MODELS,
            f"--backbone must be one of {sorted(DISENT_MODELS)}, got {config.backbone!r}")
    require(config.lff_bias_loss in LFF_BIAS_LOSSES,
            f"--lff_bias_loss must be one of {LFF_BIAS_LOSSES}, got {config.lff_bias_loss!r}")


def main(**flags: Any) -> None:
    """Train one model; see the module docstring for the flags."""
    if flags.get("dataset") == "folder":
        return folder_main(**from_train_disent(flags))
    preset = flags.get("preset")
    require(preset is None or preset in PRESETS, f"--preset must be one of {sorted(PRESETS)}, got {preset!r}")
    defaults = {**DEFAULTS, **PRESETS.get(preset, {})}
    config = build_config(defaults, flags, untyped=("percent",))
    config.select_on = config.select_on or ("test" if config.select_on_test else "valid")
    config.percent = normalise_percent(config.percent)
    if config.batch_size is None and config.dataset in BATCH_SIZES:
        config.batch_size = BATCH_SIZES[config.dataset]
    method = validate(config)
    validate_variant(config)
    config.checkpoint_every_steps = config.checkpoint_every_steps or config.save_freq
    config.save_dir = f"{config.log_dir}/{config.dataset}"
    config.run_name = config.run_name or config.exp
    results = run_experiment("disent", method, config, defaults=defaults)
    if results is None:
        return
    metrics = results["metrics"]
    print(f"{results['method']} on {config.dataset} {config.percent} (seed {config.seed}), selected by "
          f"{results['selected']['by'] if isinstance(results['selected'], dict) else 'final'}: "
          + "  ".join(f"{key}={metrics[key]:.2f}" for key in SUMMARY_METRICS if key in metrics))
    print(f"results: {config.save_dir}/{config.run_name}/results.json")


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)
