"""Shared plumbing of the entry scripts: device choice, run directory naming and one training run end to end."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from munch import Munch

from criterions import CRITERIA
from datasets.disent_data import DataMismatchError
from datasets.image_io import UnreadableImageError
from datasets.mnist_io import CorruptDataError, DataNotFoundError
from methods import METHODS
from methods.rebias import rebias_method_name
from optims import OPTIMIZERS, SCHEDULERS
from tasks import TASKS
from trainer import (CHECKPOINT_NAME, NonFiniteLossError, ResumePoint, Trainer, TrainingInterrupted, autocast_factory,
                     run_identity)
from utils.io import CheckpointError, json_plain, load_checkpoint, require_meta
from utils.original_checkpoints import initialise_from, refuse_original_resume
from utils.config import ConfigError, is_batch_limit, require
from utils.distributed import init_distributed, is_main_process, shutdown
from utils.run_lock import run_dirs_locked
from utils.seed import seed_everything

USER_ERRORS = (DataNotFoundError, CorruptDataError, DataMismatchError, UnreadableImageError, CheckpointError,
               TrainingInterrupted, NonFiniteLossError)
"""Errors caused by inputs or by the user (not bugs): the entry scripts print them as one line."""

COMMON_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "deterministic": False,
    "device": None,
    "amp": "none",
    "channels_last": False,
    "compile": False,
    "save_dir": "./checkpoints",
    "run_name": None,
    "resume": None,
    "init_from": None,
    "overwrite": False,
    "tensorboard": False,
    "wandb": False,
    "wandb_project": "debias",
    "progress": True,
    "limit_train_batches": None,
    "limit_eval_batches": None,
    "val_epoch_step": 1,
    "checkpoint_every_steps": None,
    "flush_denormal": True,
}


RUN_CONTROL_FLAGS = frozenset({
    "save_dir", "run_name", "resume", "overwrite", "tensorboard", "wandb", "wandb_project", "progress",
    "checkpoint_every_steps", "device", "deterministic", "channels_last", "compile", "num_workers", "log_step",
    "root", "train_root", "val_root", "imageneta_root", "cluster_csv", "train_annotation_file", "eval_root",
    "eval_annotation_file", "frame_folders", "data_dir", "exp", "log_dir", "save_freq", "log_freq", "seed_run_names",
})
"""Flags that do not change what a run trains or measures: where it runs and how it logs, checkpoints and resumes,
and where the data are read from. Default run names leave them out, and a resumed run may change them (every
other flag must be the checkpoint's)."""

MAX_RUN_NAME = 200
"""Default run names longer than this replace their flag suffix by a hash of it (file names are limited)."""


def _name_value(value: Any) -> str:
    """A flag value as it appears in a run name: ``0.0001``, ``median``, ``True``; path-unsafe characters -> ``_``."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def default_run_name(prefix: str, config: Mapping[str, Any], defaults: Mapping[str, Any],
                     spelled: Iterable[str] = ()) -> str:
    """``prefix`` followed by ``_<flag>-<value>`` for every flag that differs from ``defaults`` (in their order),
    except :data:`RUN_CONTROL_FLAGS` and the ``spelled`` flags the prefix already names, so that two commands that
    train or measure different things never share a default run name."""
    skipped = RUN_CONTROL_FLAGS | set(spelled)
    suffix = "".join(f"_{flag}-{_name_value(config[flag])}" for flag, default in defaults.items()
                     if flag not in skipped and config[flag] != default)
    if len(prefix) + len(suffix) > MAX_RUN_NAME:
        suffix = "_flags-" + hashlib.sha1(suffix.encode()).hexdigest()[:12]
    return prefix + suffix


def rebias_run_name(prefix: str, config: Munch, defaults: Mapping[str, Any], spelled: Iterable[str] = ()) -> str:
    """The default run name of the f/g trainer's entry scripts, without its ``_seed<k>``: ``prefix``, which spells
    the method (:func:`methods.rebias.rebias_method_name`), then the flags that differ from ``defaults``."""
    method_flags = ["outer_criterion"]
    if rebias_method_name(config) == "Vanilla":
        method_flags += ["f_lambda_outer", "g_lambda_inner"]
    return default_run_name(prefix, config, defaults, {*spelled, *method_flags, "seed", "seeds"})


def _continues_own_checkpoint(config: Munch) -> bool:
    """Whether ``--resume`` continues the run from its own ``RUN_DIR/last.pth``."""
    own = Path(config.save_dir) / config.run_name / CHECKPOINT_NAME
    if not config.resume or not own.exists():
        return False
    return config.resume is True or config.resume == "auto" or Path(config.resume).resolve() == own.resolve()


def refuse_other_flags(path: Path, saved: Mapping[str, Any], config: Mapping[str, Any],
                       defaults: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> None:
    """Refuse to continue the checkpoint ``path``, whose configuration is ``saved``, unless it was trained with the
    flags of ``config`` (all but :data:`RUN_CONTROL_FLAGS`; a flag missing from either side counts as its value in
    ``defaults``: a flag newer than the checkpoint). One line lists every difference, after the checkpoint's task
    and method (its ``meta``) where known."""
    absent = object()
    saved, current, defaults = json_plain(dict(saved)), json_plain(dict(config)), json_plain(dict(defaults))

    def value(source: dict[str, Any], flag: str) -> Any:
        return source[flag] if flag in source else defaults.get(flag, absent)

    def shown(value: Any) -> str:
        return "unset" if value is absent else repr(value)

    differences = [f"--{flag} {shown(value(saved, flag))} (checkpoint) vs {shown(value(current, flag))} (this run)"
                   for flag in dict.fromkeys([*saved, *current])
                   if flag not in RUN_CONTROL_FLAGS and value(saved, flag) != value(current, flag)]
    if differences:
        known = [f"{key} {meta[key]}" for key in ("task", "method") if isinstance(meta, Mapping) and key in meta]
        of = f" ({', '.join(known)})" if known else ""
        raise CheckpointError(f"checkpoint '{path}'{of} was trained with other flags: {', '.join(differences)}; "
                              "resume with the checkpoint's flags, or start a new run (another --run_name) without "
                              "--resume")


def resume_point(config: Munch, defaults: Mapping[str, Any], task_name: str | None = None) -> ResumePoint | None:
    """The checkpoint ``--resume`` continues from (``RUN_DIR/last.pth`` for ``--resume`` / ``auto``, else the path
    given), loaded on the CPU and checked before any data are read: its task is ``task_name`` (``Task.name_for``)
    and its flags are this run's (:func:`refuse_other_flags`); :func:`require_resume_fits` checks its task, method
    and data once they are built.
    None for a fresh start: no ``--resume``, or ``auto`` without one. The authors' checkpoints are refused with a
    hint at ``--init_from`` (they lack this project's trainer state)."""
    if not config.resume:
        return None
    own = Path(config.save_dir) / config.run_name / CHECKPOINT_NAME
    if config.resume == "auto" and not own.exists():
        return None
    path = own if config.resume is True or config.resume == "auto" else Path(config.resume)
    try:
        checkpoint = load_checkpoint(path, expect={"task": task_name} if task_name is not None else None)
    except CheckpointError:
        refuse_original_resume(path)
        raise
    if not isinstance(checkpoint.get("config"), dict):
        raise CheckpointError(f"checkpoint '{path}' holds no configuration: its flags cannot be checked")
    refuse_other_flags(path, checkpoint["config"], config, defaults, checkpoint["meta"])
    return ResumePoint(path, checkpoint)


def require_resume_fits(point: ResumePoint, task: Any, method: Any) -> None:
    """Refuse to continue ``point`` unless its ``meta`` holds this run's task, method and data fingerprint
    (:func:`trainer.run_identity`)."""
    require_meta(point.checkpoint, point.path, run_identity(task, method))


def refuse_finished_runs(config: Munch, results_paths: Iterable[Path]) -> None:
    """Refuse to replace a finished run's ``results.json`` unless ``--overwrite`` is given or the run continues from
    its own checkpoint (``--resume``)."""
    if config.overwrite or _continues_own_checkpoint(config):
        return
    for path in results_paths:
        require(not path.exists(), f"{path.parent} already holds a finished run (results.json): pass --overwrite to "
                                   "replace it, --resume to continue it, or another --run_name or --save_dir")


def resolve_device(requested: str | None) -> torch.device:
    """``--device``: cuda when available unless told otherwise; asking for an absent device is a ConfigError."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise ConfigError(f"--device: {error}") from error
    require(device.type != "cuda" or torch.cuda.is_available(), f"--device {requested}: CUDA is not available here")
    return device


def validate_common(config: Munch) -> None:
    """Checks shared by every entry script."""
    require(config.amp in ("none", "bf16"), f"--amp must be 'none' or 'bf16', got {config.amp!r}")
    require(isinstance(config.seed, int) and config.seed >= 0, "--seed must be a non-negative integer")
    for name in ("limit_train_batches", "limit_eval_batches"):
        value = config[name]
        require(is_batch_limit(value),
                f"--{name} must be a number of batches >= 1 or a fraction in (0, 1], got {value!r}")
    require(isinstance(config.val_epoch_step, int) and config.val_epoch_step >= 1,
            "--val_epoch_step must be a positive integer")
    every = config.checkpoint_every_steps
    require(every is None or (isinstance(every, int) and not isinstance(every, bool) and every >= 1),
            f"--checkpoint_every_steps must be a positive integer, got {every!r}")
    require(config.resume is None or isinstance(config.resume, (bool, str)),
            "--resume takes no value, 'auto', or a checkpoint path")
    init_from = config.get("init_from")
    require(init_from is None or (isinstance(init_from, str) and init_from != ""),
            "--init_from takes a checkpoint path (this project's, or DisEnt's, LfF's or ReBias')")


REBIAS_DEFAULTS: dict[str, Any] = {
    "lr": 0.001,
    "weight_decay": 1e-4,
    "optim": "Adam",
    "n_epochs": 80,
    "lr_step_size": 20,
    "scheduler": "StepLR",
    "n_f_pretrain_epochs": 0,
    "n_g_pretrain_epochs": 0,
    "f_lambda_outer": 1.0,
    "g_lambda_inner": 1.0,
    "n_g_update": 1,
    "update_g_cls": True,
    "outer_criterion": "RbfHSIC",
    "inner_criterion": "MinusRbfHSIC",
    "rbf_sigma_scale_x": 1.0,
    "rbf_sigma_scale_y": 1.0,
    "rbf_sigma_x": 1,
    "rbf_sigma_y": 1,
    "update_sigma_per_epoch": False,
    "sigma_update_sampling_rate": 0.25,
    "hsic_alg": "unbiased",
    "feature_pos": "post",
    "n_g_nets": 1,
    "untrained_comparison_fc": False,
    "swap_inner_sigma": False,
    **COMMON_DEFAULTS,
}
"""Flags of the f/g trainer (methods/rebias.py) shared by its entry scripts, at the original's Biased MNIST
defaults; each entry script overrides the values its original script changes."""

REBIAS_UNTYPED_FLAGS = ("rbf_sigma_x", "rbf_sigma_y")
"""Flags of the f/g trainer that take a number or a word ('median'), validated by :func:`validate_rebias`."""


def _is_sigma(value: Any) -> bool:
    return value == "median" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0)


def validate_rebias(config: Munch) -> None:
    """Checks of the flags shared by every entry script of the f/g trainer (methods/rebias.py)."""
    validate_common(config)
    require(config.optim in OPTIMIZERS, f"--optim must be one of {sorted(OPTIMIZERS)}, got {config.optim!r}")
    require(config.scheduler in SCHEDULERS, f"--scheduler must be one of {list(SCHEDULERS)}, got {config.scheduler!r}")
    for flag in ("outer_criterion", "inner_criterion"):
        require(config[flag] in CRITERIA, f"--{flag} must be one of {sorted(CRITERIA)}, got {config[flag]!r}")
    for flag in ("rbf_sigma_x", "rbf_sigma_y"):
        require(_is_sigma(config[flag]), f"--{flag} must be a positive number or 'median', got {config[flag]!r}")
    require(config.hsic_alg in ("unbiased", "biased"), "--hsic_alg must be 'unbiased' or 'biased'")
    require(config.feature_pos in ("pre", "post", "logits"), "--feature_pos must be 'pre', 'post' or 'logits'")
    for flag in ("batch_size", "n_g_nets", "lr_step_size"):
        require(config[flag] >= 1, f"--{flag} must be at least 1, got {config[flag]}")
    require(config.hsic_alg != "unbiased" or config.batch_size >= 4, "--batch_size must be >= 4 for unbiased HSIC")
    for flag in ("n_epochs", "n_f_pretrain_epochs", "n_g_pretrain_epochs", "n_g_update"):
        require(config[flag] >= 0, f"--{flag} must be >= 0, got {config[flag]}")
    require(config.n_epochs + config.n_f_pretrain_epochs + config.n_g_pretrain_epochs >= 1,
            "--n_epochs 0 without pre-training epochs trains nothing: give at least one epoch")
    require(0 < config.sigma_update_sampling_rate <= 1, "--sigma_update_sampling_rate must lie in (0, 1]")
    require(config.lr > 0, f"--lr must be positive, got {config.lr}")


def run_experiment(task_name: str, method_name: str, config: Munch, trainer_class: type[Trainer] = Trainer, *,
                   defaults: Mapping[str, Any]) -> dict[str, Any] | None:
    """Seed, build the task and the method, train, and return the results (also written to ``results.json``);
    ``defaults`` are the entry script's flag defaults (a flag newer than a resumed checkpoint counts as its default).

    The run holds the locks of its directories (utils/run_lock.py) throughout, and every check passes before it
    writes anything: no other process runs there, ``--resume``'s checkpoint is of this task, method and flags, and
    a finished run is replaced only with ``--overwrite``. A refused run leaves no file behind. A fresh run with
    ``--init_from PATH`` starts from the network weights of PATH (any format of utils/original_checkpoints.py;
    weights only, the rest starts fresh). Under torchrun only the main process locks and returns the results; the
    others return None."""
    device = init_distributed(resolve_device(config.device))
    config.device = str(device)
    main_process = is_main_process()
    flush = device.type == "cpu" and bool(config.get("flush_denormal", True))
    try:
        with run_dirs_locked(trainer_class.run_dirs(config)) if main_process else nullcontext():
            refuse_finished_runs(config, trainer_class.results_paths(config))
            METHODS[method_name].check_config(config)
            resume_from = resume_point(config, defaults, TASKS[task_name].name_for(config))
            seed_everything(config.seed, config.deterministic)
            torch.set_flush_denormal(flush)
            task = TASKS[task_name](config, device)
            autocast = autocast_factory(device, config.amp)
            method = METHODS[method_name](config, task, device, autocast)
            if resume_from is not None:
                require_resume_fits(resume_from, task, method)
            elif config.get("init_from"):
                report = initialise_from(method, config.init_from)
                if main_process:
                    print(report, flush=True)
            run_dir = Path(config.save_dir) / config.run_name
            results = trainer_class(config, task, method, run_dir, device, autocast).fit(resume_from)
    finally:
        shutdown()
        if flush:
            torch.set_flush_denormal(False)
    return results if main_process else None


def print_rebias_results(results: dict[str, Any], headline: str, config: Munch) -> None:
    """The end-of-run summary of the f/g trainer's entry scripts: f's and every g's metrics, where results are."""
    metrics = "  ".join(f"{k}={v:.2f}" for k, v in results["metrics"].items())
    print(f"{headline}: f {metrics}")
    for i, g_metrics in enumerate(results["g_metrics"]):
        print(f"  g_{i}: " + "  ".join(f"{k}={v:.2f}" for k, v in g_metrics.items()))
    print(f"results: {config.save_dir}/{config.run_name}/results.json")
