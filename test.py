"""Evaluate a checkpoint, this project's or the authors' (DisEnt, LfF, ReBias), on its task's evaluation sets.

    python test.py --pretrained_path=<path_to_pretrained_ckpt> --dataset=<dataset> --percent=<percent>   (DisEnt's)
    python test.py --pretrained_path RUN_DIR_OR_FILE [--checkpoint best|last] [--device cpu] [--out FILE]
        [--data_dir DIR] [--root MNIST_ROOT] [--val_root DIR --imageneta_root DIR --cluster_csv CSV]
        [--train_root DIR --eval_root DIR --train_annotation_file F --eval_annotation_file F] [--frame_folders]
        [--num_frames 8 --sampling_rate 8 --crop_size 224 --test_crop_size 256 --num_clips 10 --target_fps 30
        --frames_fps 30] [--image_size 224] [--num_workers N] [--batch_size N] [--limit_eval_batches N]

``--pretrained_path``: a checkpoint file, or a folder holding one: this project's run directory (``best.pth``, or
``last.pth`` with ``--checkpoint last``), DisEnt's ``log/<dataset>/<exp>`` or its ``result/`` (``best_model_l.th`` +
``best_model_b.th``, or ``best_model.th`` of ``--train_vanilla``), LfF's ``result/<tag>`` (``model.th``), ReBias'
save_dir (``best.pth`` / ``last.pth``). The format is recognised from the file's keys (utils/original_checkpoints.py).
Every task: Biased MNIST (biased / unbiased / rho0), 9-class ImageNet (unbiased over the texture clusters, biased,
imagenet-a), Kinetics -> Mimetics, DisEnt's Colored MNIST / Corrupted CIFAR-10 / BFFHQ, matrix cells, folders.

DisEnt's and LfF's files do not record their data: ``--dataset`` and ``--percent`` are required for them (and
``--data_dir``, default ``dataset`` as there); for this project's checkpoints they must match the checkpoint. ReBias'
files give their task by their networks (SimpleConvNet: Biased MNIST, ``--root`` required; ResNet18/BagNet18:
ImageNet, ``--val_root``; 3D ResNets: action, the Kinetics/Mimetics flags); ImageNet's ``--train_root`` defaults to
``--val_root`` here (its images are listed, never read). The data flags above override a checkpoint's folders and
reading settings (:data:`SETTING_FLAGS`; a project checkpoint's ``--num_frames`` / ``--crop_size`` size its network
and must stay as trained).

Prints the metrics and writes them, with the per-cell accuracies and each split's worst group (lowest (target, bias)
cell accuracy of f), to ``test_results.json`` beside the checkpoint (or ``--out``; its folder is checked before
evaluating), with the reading settings used. ``--batch_size`` sets the evaluation batch; the other flags of
DisEnt's train.py/test.py (:data:`IGNORED_ORIGINAL_FLAGS`) are accepted and ignored, as there; any other flag is
refused.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from munch import Munch

from datasets.disent_data import cmnist_variant, read_manifest
from evaluator import CellAccuracy, evaluate
from experiment import USER_ERRORS, resolve_device
from methods import METHODS
from tasks import TASKS
from tasks.disent import BACKBONES, BATCH_SIZES, NUM_CLASSES
from trainer import autocast_factory, summarise
from utils.config import ConfigError, require, require_writable_dir, run_cli
from utils.io import CheckpointError, atomic_write_json
from utils.original_checkpoints import PROJECT, LoadedCheckpoint, load_networks, read_checkpoint
from utils.seed import seed_everything

IGNORED_ORIGINAL_FLAGS = frozenset({
    "lr", "weight_decay", "momentum", "exp", "num_steps", "target_attr_idx",
    "bias_attr_idx", "use_lr_decay", "lr_decay_step", "q", "lr_gamma", "lambda_dis_align", "lambda_swap_align",
    "lambda_swap", "ema_alpha", "curr_step", "use_type0", "use_type1", "use_resnet20", "model", "log_dir",
    "valid_freq", "log_freq", "save_freq", "wandb", "tensorboard", "train_ours", "train_vanilla",
})
"""The flags of DisEnt's train.py/test.py (disent_spec §2) that this test.py does not read: the checkpoint's
config, or its networks, say what they were."""
PATH_FLAGS = ("root", "train_root", "val_root", "imageneta_root", "cluster_csv", "train_annotation_file",
              "eval_root", "eval_annotation_file")
"""Where a task's data are: given here, they replace the checkpoint's folders (``--data_dir`` too)."""
SETTING_FLAGS: dict[str, type] = {
    "frame_folders": bool, "image_size": int, "num_frames": int, "sampling_rate": int, "target_fps": float,
    "frames_fps": float, "crop_size": int, "test_crop_size": int, "num_clips": int, "num_workers": int,
    "batch_size": int}
"""How the data are read, with each flag's type: ImageNet's input size and the action clips (ReBias' files do not
record them: main_imagenet.py's / main_action.py's defaults unless given), the loader workers and the evaluation
batch (no prediction depends on it). Given here, they replace the checkpoint's, except :data:`NETWORK_FLAGS`."""
NETWORK_FLAGS = ("num_frames", "crop_size")
"""Settings that size a network (the 3D ResNet's pooling): a checkpoint of this project records them, and another
value would evaluate another model, so they are refused there unless equal."""
DATA_FLAGS = (*PATH_FLAGS, *SETTING_FLAGS)
EVALUATION_SETTINGS = tuple(flag for flag in SETTING_FLAGS if flag not in ("num_workers", "batch_size"))
"""The settings written into the results (those of the checkpoint's task)."""


def check_setting_flags(flags: dict[str, Any]) -> None:
    """One line for a setting of the wrong type or range (``--num_clips 0``, a bare ``--batch_size``)."""
    for flag, kind in SETTING_FLAGS.items():
        if flag not in flags:
            continue
        value, least = flags[flag], 0 if flag == "num_workers" else 1
        if kind is bool:
            require(isinstance(value, bool), f"--{flag} is True or False, got {value!r}")
        elif kind is int:
            require(isinstance(value, int) and not isinstance(value, bool) and value >= least,
                    f"--{flag} must be an integer >= {least}, got {value!r}")
        else:
            require(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
                    f"--{flag} must be a positive number, got {value!r}")


DISENT_MODELS_BY_DATASET = {"cmnist": ("mlp", "mlp_lff"), "cifar10c": ("resnet18",), "bffhq": ("resnet18",)}
"""The networks the originals train on each of DisEnt's datasets (DisEnt: MLP / ResNet18; LfF: its wider MLP)."""


ENTRY_SCRIPTS = {"disent": "train_disent", "biased_mnist": "main_biased_mnist",
                 "biased_mnist_seeds": "main_biased_mnist", "imagenet": "main_imagenet", "action": "main_action"}
"""The entry script that trains each task whose checkpoints may lack flags (matrix and folder checkpoints hold
their resolved configuration)."""
FLAGS_IMPLIED_BY_OLD_DISENT = {"select_on": "valid", "palette": "hues", "render": "lff"}
"""What DisEnt checkpoints from before --select_on, --palette and --render implied."""


def entry_defaults(task: str) -> dict[str, Any]:
    """The flag defaults of the entry script that trains ``task`` (flags newer than a checkpoint take them)."""
    if task not in ENTRY_SCRIPTS:
        return {}
    defaults = dict(importlib.import_module(ENTRY_SCRIPTS[task]).DEFAULTS)
    return {**defaults, **FLAGS_IMPLIED_BY_OLD_DISENT} if task == "disent" else defaults


def entry_validate(task: str, config: Munch) -> None:
    """The entry script's checks of a configuration built for an original checkpoint (data folders given...)."""
    importlib.import_module(ENTRY_SCRIPTS[task]).validate(config)


def disent_config(loaded: LoadedCheckpoint, dataset: str | None, percent: Any, data_dir: str | None,
                  data_flags: dict[str, Any]) -> Munch:
    """The train_disent.py configuration of a DisEnt / LfF file, for ``--dataset`` / ``--percent``, checked against
    the file's network (architecture, class count)."""
    from train_disent import normalise_percent, validate, validate_variant
    require(dataset is not None and percent is not None,
            f"{loaded.description} does not record its data: give --dataset and --percent (as DisEnt's README)")
    config = Munch({**entry_defaults("disent"), **loaded.config, "dataset": dataset,
                    "percent": normalise_percent(percent), "data_dir": data_dir or "dataset"})
    require(config.dataset in NUM_CLASSES, f"--dataset must be one of {sorted(NUM_CLASSES)}, got {dataset!r}")
    if config.backbone not in DISENT_MODELS_BY_DATASET[config.dataset]:
        raise CheckpointError(f"{loaded.description} holds a {config.backbone} network, but the originals train "
                              f"{BACKBONES[config.dataset]} on --dataset {config.dataset}")
    if loaded.num_classes != NUM_CLASSES[config.dataset]:
        raise CheckpointError(f"{loaded.description} classifies {loaded.num_classes} classes, but --dataset "
                              f"{config.dataset} has {NUM_CLASSES[config.dataset]}")
    config.batch_size = BATCH_SIZES[config.dataset]
    for flag in sorted(set(data_flags) - {"num_workers", "batch_size"}):
        raise ConfigError(f"--{flag} does not apply to {loaded.description} (DisEnt's data sets take --data_dir, "
                          "--num_workers and --batch_size)")
    config.update(data_flags)
    config.select_on = "final"  # nothing is selected here (LfF's data have no valid split)
    manifest = read_manifest(config.data_dir, config.dataset, config.percent) if config.dataset == "cmnist" else None
    if manifest is not None:  # the file does not say which colours it was trained on: the data's own
        config.update({key: value for key, value in cmnist_variant(manifest).items() if key in ("palette", "render")})
    validate(config)
    validate_variant(config)
    return config


def run_config(loaded: LoadedCheckpoint, dataset: str | None, percent: Any, data_dir: str | None,
               data_flags: dict[str, Any]) -> tuple[str, Munch]:
    """The task's registry name and the configuration to rebuild the checkpoint's task and method with."""
    if loaded.task is None:
        return "disent", disent_config(loaded, dataset, percent, data_dir, data_flags)
    config = Munch({**entry_defaults(loaded.task), **loaded.config})
    if loaded.format == PROJECT:
        from train_disent import normalise_percent
        for flag, value in (("dataset", dataset), ("percent", None if percent is None else normalise_percent(percent))):
            if value is not None and value != config.get(flag):
                shown = f"{config.get('dataset')} {config.get('percent')}" if "dataset" in config else loaded.task
                raise CheckpointError(f"'{loaded.path}' is a {shown} checkpoint, not --{flag} {value}")
    else:
        require(dataset is None and percent is None, f"{loaded.description} is a {loaded.task} checkpoint: "
                                                     "--dataset and --percent are for DisEnt's data sets")
    if data_dir is not None:
        config.data_dir = data_dir
    if loaded.format == PROJECT:
        for flag in NETWORK_FLAGS:
            if flag in data_flags and flag in config and data_flags[flag] != config[flag]:
                raise CheckpointError(f"'{loaded.path}' was trained with --{flag} {config[flag]}, which sizes its "
                                      f"network: --{flag} {data_flags[flag]} would evaluate another model")
    config.update(data_flags)
    if loaded.task == "imagenet" and config.get("train_root") is None:
        config.train_root = config.val_root
    if loaded.format != PROJECT:
        entry_validate(loaded.task, config)
    return loaded.task, config


def split_results(task: Any, cells: dict[str, dict[str, CellAccuracy]]) -> dict[str, Any]:
    """Training's result entries of one evaluation: f's metrics, every predictor's, per-cell accuracies and each
    split's worst group."""
    summary = summarise(task, cells)
    return {"metrics": summary["f"], "predictor_metrics": summary,
            "per_cell_accuracy": {loader: per_predictor["f"].per_cell() for loader, per_predictor in cells.items()},
            "worst_group": {loader: per_predictor["f"].worst_group() for loader, per_predictor in cells.items()}}


def main(pretrained_path: str | None = None, dataset: str | None = None, percent: Any = None,
         data_dir: str | None = None, checkpoint: str = "best", device: str | None = None,
         limit_eval_batches: int | float | None = None, out: str | None = None,
         **flags: Any) -> dict[str, Any]:
    """Load, evaluate, print and write the metrics; the original's other flags are accepted and ignored."""
    unknown = sorted(set(flags) - IGNORED_ORIGINAL_FLAGS - set(DATA_FLAGS))
    if unknown:
        raise ConfigError(f"unknown flag --{unknown[0]} (test.py takes its own flags and those of the original "
                          f"train.py/test.py; run with --help)")
    require(pretrained_path is not None, "--pretrained_path is required (a run directory or a checkpoint file)")
    require(checkpoint in ("best", "last"), f"--checkpoint must be 'best' or 'last', got {checkpoint!r}")
    require(out is None or not Path(str(out)).is_dir(), f"--out {out}: is a folder, give a file name")
    check_setting_flags(flags)
    loaded = read_checkpoint(str(pretrained_path), checkpoint)
    output = Path(str(out)) if out is not None else loaded.path.parent / "test_results.json"
    where = f"--out {out}" if out is not None else f"--pretrained_path {pretrained_path} (test_results.json's folder)"
    require_writable_dir(output.parent, where)
    task_name, config = run_config(loaded, dataset, percent, data_dir,
                                   {flag: flags[flag] for flag in DATA_FLAGS if flag in flags})
    config.update(device=device, limit_eval_batches=limit_eval_batches, resume=None, init_from=None, compile=False,
                  rbf_sigma_x=1.0, rbf_sigma_y=1.0)  # no median radii from the training data: f's outputs need none
    torch_device = resolve_device(config.device)
    seed_everything(config.get("seed", 0))
    classes = getattr(TASKS[task_name], "num_classes", None)  # the ReBias tasks': known before their data are read
    if loaded.num_classes is not None and classes is not None and loaded.num_classes != classes:
        raise CheckpointError(f"{loaded.description} classifies {loaded.num_classes} classes, but "
                              f"{TASKS[task_name].name_for(config)} has {classes}")
    task = TASKS[task_name](config, torch_device)
    method = METHODS[loaded.method](config, task, torch_device)
    if loaded.format == PROJECT:
        try:
            method.load_state_dict(loaded.state["method"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"'{loaded.path}' does not fit a {method.name} model on {task.name}: "
                                  f"{str(error).splitlines()[0]}") from error
        unloaded: set[str] = set()
    else:
        unloaded = set(method.networks) - set(load_networks(method, loaded, required=False))
    autocast = autocast_factory(torch_device, config.get("amp", "none"))
    seeds = list(zip(config.seeds, task.seed_tasks)) if hasattr(task, "seed_tasks") else [(None, task)]
    runs = []
    for index, (seed, seed_task) in enumerate(seeds):
        predictors = method.predictors() if seed is None else method.seed_predictors(index)
        predictors = {name: net for name, net in predictors.items() if name not in unloaded}
        cells = evaluate(predictors, seed_task.eval_loaders, task.num_classes, task.num_biases,
                         limit_batches=limit_eval_batches, autocast=autocast())
        runs.append({"seed": config.get("seed") if seed is None else seed, **split_results(seed_task, cells)})
    results = {"checkpoint": str(loaded.path), "format": loaded.format, "task": task.name, "method": method.name,
               "step": loaded.step, **({"dataset": config.dataset, "percent": config.percent}
                                       if task_name == "disent" else {}),
               "evaluation_settings": {flag: config[flag] for flag in EVALUATION_SETTINGS if flag in config},
               **(runs[0] if len(runs) == 1 else {"runs": runs})}
    for run in runs:
        print(f"{method.name} {task.name} ({loaded.format}) seed {run['seed']} step {loaded.step}: "
              + "  ".join(f"{key}={value:.2f}" for key, value in run["metrics"].items()))
    atomic_write_json(results, output)
    return results


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)
