"""Write a run of this project as the authors' code saves it, so that their evaluation can check a result here.

    python -m utils.export_original RUN_DIR --format disent|lff|rebias [--checkpoint best|last] [--out DIR]

* ``disent``: a DisEnt run -> ``best_model_l.th`` (intrinsic) + ``best_model_b.th`` (bias), a Vanilla run of
  train_disent.py -> ``best_model.th``; each ``{steps, state_dict, optimizer}``, the names DisEnt's ``test.py
  --pretrained_path DIR`` reads. The optimiser entry is this run's Adam split into one Adam per network, as DisEnt
  keeps them (Adam being element-wise, the same state);
* ``lff``: an LfF run -> ``model.th = {steps, state_dict, optimizer}`` of the de-biased network, as LfF's train.py
  writes it (its biased network is not saved there either);
* ``rebias``: an f/g run (ReBias, Vanilla, LearnedMixin, RUBi on Biased MNIST, ImageNet or action) -> ``best.pth``
  or ``last.pth = {f_net, g_nets, f_optimizer, g_optimizer, f_lr_scheduler, g_lr_scheduler, options, metadata}``,
  the networks with ReBias' keys (``extracter``, SlowFast's 3D ResNet names) inside ``DataParallel`` (``module.``),
  ``options`` as plain dicts with the original's keys.

``--out`` defaults to ``RUN_DIR/original_<format>``. Prints the files written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from tasks import TASKS
from utils.config import ConfigError, require, require_writable_dir, run_cli
from utils.io import CheckpointError, atomic_torch_save
from utils.original_checkpoints import (PROJECT, LoadedCheckpoint, read_checkpoint, rebias_architecture,
                                        to_original_keys)

FORMATS = ("disent", "lff", "rebias")
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def parameter_count(state: dict[str, Tensor]) -> int:
    """Parameters (not BatchNorm buffers) of a network's state dict, in ``parameters()`` order."""
    return sum(1 for key in state if not key.endswith(BUFFER_SUFFIXES))


def split_optimizer(optimizer: dict[str, Any], networks: dict[str, dict[str, Tensor]]) -> dict[str, dict[str, Any]]:
    """One Adam's state over several networks' parameters (in the order of ``networks``) as one Adam per network,
    each numbering its parameters from 0 (the inverse of methods.disent.merged_optimizer_state)."""
    group = optimizer["param_groups"][0]
    settings = {key: value for key, value in group.items() if key != "params"}
    settings["fused"] = None  # the original's Adam is built without fused kernels
    split, offset = {}, 0
    for name, state in networks.items():
        count = parameter_count(state)
        split[name] = {"state": {index - offset: value for index, value in optimizer["state"].items()
                                 if offset <= index < offset + count},
                       "param_groups": [{**settings, "params": list(range(count))}]}
        offset += count
    return split


def _step_file(step: int, weights: dict[str, Tensor], optimizer: dict[str, Any]) -> dict[str, Any]:
    return {"steps": step, "state_dict": weights, "optimizer": optimizer}


def disent_files(loaded: LoadedCheckpoint) -> dict[str, dict[str, Any]]:
    """DisEnt's files of a DisEnt or Vanilla (train_disent.py) run."""
    state, step = loaded.state["method"], loaded.step or 0
    optimizers = split_optimizer(state["optimizer"], loaded.networks)
    if loaded.method == "disent":
        return {"best_model_l.th": _step_file(step, loaded.networks["intrinsic"], optimizers["intrinsic"]),
                "best_model_b.th": _step_file(step, loaded.networks["bias"], optimizers["bias"])}
    require(loaded.method == "vanilla_disent", f"--format disent exports DisEnt and Vanilla runs of train_disent.py; "
                                               f"'{loaded.path}' is a {loaded.method} run")
    return {"best_model.th": _step_file(step, loaded.networks["f"], optimizers["f"])}


def lff_files(loaded: LoadedCheckpoint) -> dict[str, dict[str, Any]]:
    """LfF's ``model.th`` of an LfF run."""
    require(loaded.method == "lff", f"--format lff exports LfF runs; '{loaded.path}' is a {loaded.method} run")
    optimizers = split_optimizer(loaded.state["method"]["optimizer"], loaded.networks)
    return {"model.th": _step_file(loaded.step or 0, loaded.networks["f"], optimizers["f"])}


def _original_network(state: dict[str, Tensor]) -> dict[str, Tensor]:
    architecture = rebias_architecture(state)
    return {f"module.{key}": value for key, value in to_original_keys(state, architecture or "").items()}


def rebias_options(config: dict[str, Any], task: str) -> dict[str, Any]:
    """The original trainer's ``options`` (its keys; plain dicts) for a run's configuration."""
    criterion = {"sigma_x": config.get("rbf_sigma_x"), "sigma_y": config.get("rbf_sigma_y"),
                 "algorithm": config.get("hsic_alg")}
    num_classes = TASKS[task].num_classes
    if task == "biased_mnist":
        networks = [{"num_classes": num_classes, "kernel_size": config[f"{net}_kernel_size"],
                     "feature_pos": config["feature_pos"]} for net in ("f", "g")]
    elif task == "action":
        networks = [{"resnet_depth": config["resnet_depth"], "model_arch": config[f"{net}_temporal_kernel_sizes"],
                     "feature_position": config["feature_pos"], "width_per_group": config["resnet_base_width"],
                     "num_classes": num_classes, "final_bottleneck_dim": 0} for net in ("f", "g")]
    else:
        networks = [{"num_classes": num_classes, "feature_pos": config["feature_pos"]} for _ in ("f", "g")]
    optim = {"lr": config.get("lr"), "weight_decay": config.get("weight_decay")}
    return {"outer_criterion": config.get("outer_criterion"), "inner_criterion": config.get("inner_criterion"),
            "outer_criterion_config": dict(criterion), "inner_criterion_config": dict(criterion),
            "f_config": networks[0], "g_config": networks[1], "f_lambda_outer": config.get("f_lambda_outer"),
            "g_lambda_inner": config.get("g_lambda_inner"), "n_g_update": config.get("n_g_update"),
            "update_g_cls": config.get("update_g_cls"), "n_g_nets": config.get("n_g_nets"),
            "optimizer": config.get("optim"), "f_optim_config": dict(optim), "g_optim_config": dict(optim),
            "scheduler": config.get("scheduler"), "n_epochs": config.get("n_epochs"),
            "n_f_pretrain_epochs": config.get("n_f_pretrain_epochs"),
            "n_g_pretrain_epochs": config.get("n_g_pretrain_epochs")}


def rebias_files(loaded: LoadedCheckpoint, which: str) -> dict[str, dict[str, Any]]:
    """ReBias' ``best.pth`` / ``last.pth`` of an f/g run."""
    require(loaded.method == "rebias" and loaded.task in ("biased_mnist", "imagenet", "action"),
            f"--format rebias exports f/g runs of Biased MNIST, ImageNet or action; '{loaded.path}' is a "
            f"{loaded.method} run of {loaded.task}")
    state = loaded.state["method"]
    g_names = sorted((name for name in loaded.networks if name.startswith("g_")), key=lambda n: int(n[2:]))
    trainer = loaded.state["trainer"]
    best = trainer.get("best") or {}
    return {f"{which}.pth": {
        "f_net": _original_network(loaded.networks["f"]),
        "g_nets": [_original_network(loaded.networks[name]) for name in g_names],
        "f_optimizer": state["f_optimizer"], "g_optimizer": state["g_optimizer"],
        "f_lr_scheduler": state["f_scheduler"], "g_lr_scheduler": state["g_scheduler"],
        "options": rebias_options(loaded.config, loaded.task),
        "metadata": {"cur_epoch": trainer.get("epoch"), "best_acc": best.get("value", 0)},
    }}


def export(run_dir: str | Path, format: str, checkpoint: str = "best", out: str | Path | None = None) -> list[Path]:
    """Write the original-format files of a run's ``best``/``last`` checkpoint; returns their paths."""
    require(format in FORMATS, f"--format must be one of {FORMATS}, got {format!r}")
    require(checkpoint in ("best", "last"), f"--checkpoint must be 'best' or 'last', got {checkpoint!r}")
    loaded = read_checkpoint(run_dir, checkpoint)
    if loaded.format != PROJECT:
        raise CheckpointError(f"{loaded.description} is already in an original format: export_original reads "
                              "this project's runs")
    if not loaded.networks:
        raise CheckpointError(f"'{loaded.path}' holds seed-stacked networks: export one seed's run instead")
    files = {"disent": disent_files, "lff": lff_files}.get(format, lambda c: rebias_files(c, checkpoint))(loaded)
    folder = Path(out) if out is not None else loaded.path.parent / f"original_{format}"
    require_writable_dir(folder, f"--out {folder}")
    written = []
    for name, content in files.items():
        atomic_torch_save(content, folder / name)
        written.append(folder / name)
    return written


def main(run_dir: str | None = None, format: str | None = None, checkpoint: str = "best",
         out: str | None = None) -> None:
    """Export a run (see the module docstring); prints the files written."""
    if run_dir is None:
        raise ConfigError("RUN_DIR is required: a run directory or checkpoint of this project")
    for path in export(run_dir, str(format), checkpoint, out):
        print(path)


if __name__ == "__main__":
    from experiment import USER_ERRORS
    run_cli(main, user_errors=USER_ERRORS)
