"""Evaluate a checkpoint saved by train_disent.py (DisEnt / LfF / Vanilla) on its dataset's valid and test sets.

    python test.py --pretrained_path=LOG_DIR/cmnist/EXP [--dataset=cmnist --percent=1pct] [--data_dir dataset]
        [--checkpoint best|last] [--device cpu] [--out FILE]

``--pretrained_path`` is a run directory (its ``best.pth``, or ``last.pth`` with ``--checkpoint last``) or a
checkpoint file. ``--dataset`` / ``--percent``, when given, must match the checkpoint. Prints the metrics and writes
them to ``test_results.json`` beside the checkpoint (or ``--out``; its folder is checked before evaluating). The
other flags of the original train.py/test.py (:data:`IGNORED_ORIGINAL_FLAGS`) are accepted and ignored, as there;
any other flag is refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from munch import Munch

from evaluator import evaluate
from experiment import USER_ERRORS, resolve_device
from methods import METHODS
from tasks import TASKS
from train_disent import DEFAULTS, normalise_percent, validate
from trainer import autocast_factory, summarise
from utils.config import ConfigError, require, require_writable_dir, run_cli
from utils.io import CheckpointError, atomic_write_json, load_checkpoint
from utils.seed import seed_everything


IGNORED_ORIGINAL_FLAGS = frozenset({
    "batch_size", "lr", "weight_decay", "momentum", "num_workers", "exp", "num_steps", "target_attr_idx",
    "bias_attr_idx", "use_lr_decay", "lr_decay_step", "q", "lr_gamma", "lambda_dis_align", "lambda_swap_align",
    "lambda_swap", "ema_alpha", "curr_step", "use_type0", "use_type1", "use_resnet20", "model", "log_dir",
    "valid_freq", "log_freq", "save_freq", "wandb", "tensorboard", "train_ours", "train_vanilla",
})
"""The flags of DisEnt's train.py/test.py (disent_spec §2) that this test.py does not read: the checkpoint's
config says what they were."""
CHECKPOINT_ENTRIES = ("config", "method", "trainer")
"""What a checkpoint of train_disent.py holds besides its ``meta``."""


def checkpoint_path(pretrained_path: str, checkpoint: str) -> Path:
    path = Path(pretrained_path)
    return path / f"{checkpoint}.pth" if path.is_dir() else path


def main(pretrained_path: str | None = None, dataset: str | None = None, percent: Any = None,
         data_dir: str | None = None, checkpoint: str = "best", device: str | None = None,
         limit_eval_batches: int | float | None = None, out: str | None = None,
         **original_flags: Any) -> dict[str, Any]:
    """Load, evaluate, print and write the metrics; the original's other flags are accepted and ignored."""
    unknown = sorted(set(original_flags) - IGNORED_ORIGINAL_FLAGS)
    if unknown:
        raise ConfigError(f"unknown flag --{unknown[0]} (test.py takes its own flags and those of the original "
                          f"train.py/test.py; run with --help)")
    require(pretrained_path is not None, "--pretrained_path is required (a run directory or a .pth file)")
    require(checkpoint in ("best", "last"), f"--checkpoint must be 'best' or 'last', got {checkpoint!r}")
    path = checkpoint_path(str(pretrained_path), checkpoint)
    output = Path(str(out)) if out is not None else path.parent / "test_results.json"
    require(not output.is_dir(), f"--out {out}: is a folder, give a file name")
    state = load_checkpoint(path)
    task_name = state["meta"].get("task") if isinstance(state["meta"], dict) else None
    if not str(task_name).startswith("disent_"):
        raise CheckpointError(f"'{path}' was not written by train_disent.py (task {task_name!r})")
    missing = [key for key in CHECKPOINT_ENTRIES if not isinstance(state.get(key), dict)]
    if missing:
        raise CheckpointError(f"'{path}' has no '{missing[0]}' entry: it is not a complete train_disent.py checkpoint")
    # checkpoints from before --select_on, --palette and --render existed: the values they implied
    config = Munch({**DEFAULTS, "select_on": "valid", "palette": "hues", "render": "lff", **state["config"]})
    where = f"--out {out}" if out is not None else f"--pretrained_path {pretrained_path} (test_results.json's folder)"
    require_writable_dir(output.parent, where)
    for flag, value in (("dataset", dataset), ("percent", None if percent is None else normalise_percent(percent))):
        if value is not None and value != config[flag]:
            raise CheckpointError(f"'{path}' is a {config['dataset']} {config['percent']} checkpoint, "
                                  f"not --{flag} {value}")
    config.update(device=None if device is None else device, limit_eval_batches=limit_eval_batches,
                  resume=None, compile=False)
    if data_dir is not None:
        config["data_dir"] = data_dir
    method_name = validate(config)
    torch_device = resolve_device(config.device)
    seed_everything(config["seed"])
    task = TASKS["disent"](config, torch_device)
    method = METHODS[method_name](config, task, torch_device)
    try:
        method.load_state_dict(state["method"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"'{path}' does not fit a {method.name} model on {config['dataset']}: "
                              f"{str(error).splitlines()[0]}") from error
    cells = evaluate(method.predictors(), task.eval_loaders, task.num_classes, task.num_biases,
                     limit_batches=limit_eval_batches, autocast=autocast_factory(torch_device, config["amp"])())
    metrics = summarise(task, cells)["f"]
    results = {"checkpoint": str(path), "method": method.name, "dataset": config["dataset"],
               "percent": config["percent"], "step": state["trainer"]["global_step"], "metrics": metrics}
    print(f"{method.name} {config['dataset']} {config['percent']} step {results['step']}: "
          + "  ".join(f"{key}={value:.2f}" for key, value in metrics.items()))
    atomic_write_json(results, output)
    return results


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)
