"""Checkpoints of the authors' code (DisEnt, LfF, ReBias) and of this project, read as one thing.

Formats, recognised by their keys (never by the file name alone):

* ``project``: this project's Trainer, ``{meta, trainer, method, rng, config}`` (``best.pth`` / ``last.pth``);
* ``disent``: DisEnt's (kakaoenterprise/Learning-Debiased-Disentangled) ``log/<dataset>/<exp>/result/``
  ``best_model_l.th`` + ``best_model_b.th`` (``model_l_<step>.th`` + ``model_b_<step>.th`` every ``save_freq``),
  each ``{steps, state_dict, optimizer}``: the intrinsic (``_l``) and bias (``_b``) encoders, whose ``fc`` classifies
  ``[z_i ; z_b]`` (twice the feature width); its ``--train_vanilla`` writes one network, ``best_model.th``;
* ``lff``: LfF's (alinlab/LfF) ``result/<tag>/model.th = {steps, state_dict, optimizer}``, the de-biased network
  alone (its biased network is not saved);
* ``rebias``: ReBias' (clovaai/rebias) ``best.pth`` / ``last.pth = {f_net, g_nets, f_optimizer, g_optimizer,
  f_lr_scheduler, g_lr_scheduler, options, metadata}``, networks saved inside ``DataParallel`` (``module.`` keys),
  ``options`` as nested ``munch.Munch`` (read by ``safe_torch_load(plain_data=True)``, utils/io.py).

Parameter names: DisEnt's and LfF's MLPs and ResNet-18s use this project's names; ReBias' SimpleConvNet names its
trunk ``extracter`` (ours ``extractor``), its 3D ResNet follows SlowFast's names (``s1.pathway0_stem.conv``,
``s<k>.pathway0_res<j>.branch2.a``, ``head.projection``; ours ``stem.0``, ``stages.<k-2>.<j>.conv_a``, ``fc``), and
its ImageNet ResNet18 / BagNet18 match. :func:`read_checkpoint` converts any of them into a
:class:`LoadedCheckpoint` (this project's network names and keys); :func:`to_original_keys` goes the other way
(utils/export_original.py). Every problem is a one-line :class:`CheckpointError` saying what was found and what
was expected.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from utils.distributed import unwrap
from utils.io import CheckpointError, safe_torch_load

PROJECT, DISENT, LFF, REBIAS = "project", "disent", "lff", "rebias"
FORMAT_NAMES = {PROJECT: "this project's", DISENT: "DisEnt's", LFF: "LfF's", REBIAS: "ReBias'"}
STEP_FILE_KEYS = frozenset({"steps", "state_dict"})
"""Keys of DisEnt's and LfF's files (both also hold ``optimizer``)."""
REBIAS_KEYS = frozenset({"f_net", "g_nets"})
EXPECTED = ("this project's checkpoint {meta, trainer, method, rng, config}, DisEnt's or LfF's "
            "{steps, state_dict, optimizer}, or ReBias' {f_net, g_nets, f_optimizer, ..., options, metadata}")
FRESH_ON_INIT = ("optimiser state, learning-rate schedule, step counter, per-sample loss EMAs, kernel radii and "
                 "RNG start fresh")
"""What ``--init_from`` does not carry over, whatever the format: it copies network weights only."""
MISSING_TRAINER_STATE = {
    DISENT: "no learning-rate schedule, per-sample loss EMAs, trainer progress or RNG state",
    LFF: "only the de-biased network (not the biased one), and no loss EMAs, schedule or RNG state",
    REBIAS: "no kernel radii history, trainer progress or RNG state of this project",
}
"""Why ``--resume`` cannot continue from an original checkpoint (``--init_from`` starts from its weights)."""


@dataclass
class LoadedCheckpoint:
    """A checkpoint of any format as this project's pieces.

    ``networks`` maps this project's network names (``f``, ``bias``, ``intrinsic``, ``g_0``...) to state dicts
    with this project's keys; ``config`` holds the flags the file fixes (its whole configuration for ``project``);
    ``task`` / ``method`` are the TASKS / METHODS registry names (``task`` None: the flags must say, DisEnt's and
    LfF's files not recording their dataset); ``state`` is the whole file for ``project``."""

    path: Path
    format: str
    task: str | None
    method: str
    config: dict[str, Any]
    networks: dict[str, dict[str, Tensor]]
    step: int | None
    state: dict[str, Any] | None = None
    num_classes: int | None = None

    @property
    def description(self) -> str:
        return f"{FORMAT_NAMES[self.format]} checkpoint '{self.path}'"


# ------------------------------------------------------------------------------------------- finding files
PAIR_PATTERN = re.compile(r"^(?P<head>(best_)?model)_(?P<side>[lb])(?P<tail>(_\d+)?\.th)$")
BEST_FILES = ("best.pth", "best_model_l.th", "result/best_model_l.th", "best_model.th", "result/best_model.th",
              "model.th", "last.pth")
"""What a folder given to ``--pretrained_path`` is searched for, in order; ``last.pth`` last, for this project's runs
without model selection (Biased MNIST, matrix cells: the final model is the reported one)."""


def _latest(directory: Path, pattern: str) -> Path | None:
    """The file of ``directory`` (or its ``result/``) matching ``pattern`` (a regex with a ``step`` group) with the
    highest step."""
    found = [(int(match["step"]), path) for folder in (directory, directory / "result") if folder.is_dir()
             for path in folder.iterdir() if (match := re.fullmatch(pattern, path.name))]
    return max(found)[1] if found else None


def resolve_path(pretrained_path: str | Path, which: str = "best") -> Path:
    """The checkpoint file of ``--pretrained_path``: the file itself, or in a folder (a run directory of this
    project or ReBias, DisEnt's ``log/<dataset>/<exp>`` or its ``result/``, LfF's ``result/<tag>``) the first of
    :data:`BEST_FILES` present; ``which='last'`` takes ``last.pth``, DisEnt's latest ``model_l_<step>.th`` /
    ``model_<step>.th``, then LfF's ``model.th`` (its final model)."""
    path = Path(pretrained_path)
    if not path.is_dir():
        if not path.exists():
            raise CheckpointError(f"checkpoint '{path}' does not exist")
        return path
    if which == "last":
        candidates = [path / "last.pth", _latest(path, r"model_l_(?P<step>\d+)\.th"),
                      _latest(path, r"model_(?P<step>\d+)\.th"), path / "model.th"]
    else:
        candidates = [path / name for name in BEST_FILES]
    found = next((candidate for candidate in candidates if candidate is not None and candidate.is_file()), None)
    if found is None:
        looked = ", ".join(BEST_FILES) if which != "last" else \
            "last.pth, model_l_<step>.th, model_<step>.th, model.th"
        raise CheckpointError(f"'{path}' holds no checkpoint: looked for {looked} (here and in result/)")
    return found


def pair_partner(path: Path) -> Path | None:
    """DisEnt's other file of a pair: ``best_model_l.th`` <-> ``best_model_b.th``, ``model_l_<s>.th`` <->
    ``model_b_<s>.th``; None for other names."""
    match = PAIR_PATTERN.match(path.name)
    if match is None:
        return None
    other = "b" if match["side"] == "l" else "l"
    return path.with_name(f"{match['head']}_{other}{match['tail']}")


# ------------------------------------------------------------------------------------- key renaming
def strip_data_parallel(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A state dict saved inside ``nn.DataParallel`` (``module.`` keys) as the bare network's."""
    return {key.removeprefix("module."): value for key, value in state.items()}


ACTION_PARTS = {"branch2.a": "conv_a", "branch2.a_bn": "bn_a", "branch2.b": "conv_b", "branch2.b_bn": "bn_b",
                "branch1": "shortcut.0", "branch1_bn": "shortcut.1"}
"""SlowFast's names of a residual block's layers (ReBias' 3D ResNet) -> this project's (models/action_models)."""
_ACTION_ORIGINAL = re.compile(r"^s(?P<stage>[2-5])\.pathway0_res(?P<block>\d+)\.(?P<part>"
                              + "|".join(sorted(map(re.escape, ACTION_PARTS), key=len, reverse=True)) + r")\.")
_ACTION_OURS = re.compile(r"^stages\.(?P<stage>\d)\.(?P<block>\d+)\.(?P<part>"
                          + "|".join(map(re.escape, ACTION_PARTS.values())) + r")\.")
_PREFIXES = {"simple_conv": (("extracter.", "extractor."),),
             "action": (("s1.pathway0_stem.conv.", "stem.0."), ("s1.pathway0_stem.bn.", "stem.1."),
                        ("head.projection.", "fc."))}


def _action_to_ours(key: str) -> str:
    match = _ACTION_ORIGINAL.match(key)
    if match is None:
        return key
    return (f"stages.{int(match['stage']) - 2}.{match['block']}.{ACTION_PARTS[match['part']]}."
            + key[match.end():])


def _action_to_original(key: str) -> str:
    match = _ACTION_OURS.match(key)
    if match is None:
        return key
    part = {ours: original for original, ours in ACTION_PARTS.items()}[match["part"]]
    return f"s{int(match['stage']) + 2}.pathway0_res{match['block']}.{part}." + key[match.end():]


def _renamed(state: Mapping[str, Tensor], architecture: str, to_ours: bool,
             blocks: Callable[[str], str] | None) -> dict[str, Tensor]:
    renamed = {}
    for key, value in state.items():
        for original, ours in _PREFIXES.get(architecture, ()):
            source, target = (original, ours) if to_ours else (ours, original)
            if key.startswith(source):
                key = target + key[len(source):]
        renamed[blocks(key) if blocks else key] = value
    return renamed


def to_project_keys(state: Mapping[str, Tensor], architecture: str) -> dict[str, Tensor]:
    """An original network's state dict with this project's keys (``architecture``: ``simple_conv``, ``action``,
    or another name, whose keys are kept)."""
    return _renamed(state, architecture, True, _action_to_ours if architecture == "action" else None)


def to_original_keys(state: Mapping[str, Tensor], architecture: str) -> dict[str, Tensor]:
    """The inverse of :func:`to_project_keys`."""
    return _renamed(state, architecture, False, _action_to_original if architecture == "action" else None)


# ----------------------------------------------------------------------------------- architectures
def _shape(state: Mapping[str, Any], key: str) -> tuple[int, ...] | None:
    value = state.get(key)
    return tuple(value.shape) if isinstance(value, Tensor) else None


def step_network(state: Mapping[str, Any], path: Path) -> tuple[str, bool, int]:
    """``(backbone, is_disent_encoder, num_classes)`` of a DisEnt / LfF network's state dict: an MLP
    (``feature.*``; feature width 16: DisEnt's ``mlp``, 100: LfF's ``mlp_lff``) with a ``classifier`` (vanilla) or
    an ``fc`` on twice the feature width (DisEnt encoder), or a ResNet-18 (``conv1``, ``layer1..4``) whose ``fc``
    takes 512 (vanilla) or 1024 (encoder) features."""
    keys = ", ".join(list(state)[:4])
    if _shape(state, "feature.4.weight") is not None:
        width = _shape(state, "feature.4.weight")[0]
        head = "fc" if "fc.weight" in state else "classifier"
        in_features, classes = (_shape(state, f"{head}.weight") or (0, 0))[::-1]
        backbone = {16: "mlp", 100: "mlp_lff"}.get(width)
        encoder = head == "fc"
        if backbone is not None and in_features == (2 * width if encoder else width) and classes:
            return backbone, encoder, classes
    elif _shape(state, "conv1.weight") is not None and _shape(state, "layer4.1.conv2.weight") is not None:
        classes, in_features = _shape(state, "fc.weight") or (0, 0)
        if in_features in (512, 1024):
            return "resnet18", in_features == 1024, classes
    raise CheckpointError(f"'{path}': its state_dict (keys {keys}, ...) is none of the networks DisEnt and LfF "
                          "save: an MLP (feature.0-4 with classifier 16|100->C, or fc 32->C) or a ResNet-18 "
                          "(conv1, layer1-4, fc 512|1024->C)")


def rebias_architecture(state: Mapping[str, Any]) -> str | None:
    """``simple_conv`` (Biased MNIST), ``resnet`` (ImageNet's ResNet18 / BagNet18) or ``action`` (3D ResNet) for a
    ReBias network's state dict with this project's keys; None for anything else."""
    if "extractor.0.weight" in state:
        return "simple_conv"
    if "stem.0.weight" in state and "stages.0.0.conv_a.weight" in state:
        return "action"
    if "conv1.weight" in state and "layer4.0.conv1.weight" in state:
        return "resnet"
    return None


REBIAS_TASKS = {"simple_conv": "biased_mnist", "resnet": "imagenet", "action": "action"}


def _rebias_network(state: Any, path: Path, what: str) -> tuple[str, dict[str, Tensor]]:
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"'{path}': ReBias' {what} is not a state dict")
    bare = strip_data_parallel(state)
    for architecture in ("simple_conv", "action"):
        renamed = to_project_keys(bare, architecture)
        if rebias_architecture(renamed) == architecture:
            return architecture, renamed
    if rebias_architecture(bare) == "resnet":
        return "resnet", bare
    raise CheckpointError(f"'{path}': ReBias' {what} (keys {', '.join(list(bare)[:3])}, ...) is none of its "
                          "networks: SimpleConvNet (extracter.*), ResNet18/BagNet18 (conv1, layer1-4) or ResNet3D "
                          "(s1.pathway0_stem, s2-s5)")


def _temporal_kernels(state: Mapping[str, Tensor]) -> str:
    """The temporal kernel sizes (stem, s2..s5) of a 3D ResNet's state dict with this project's keys."""
    return "".join(str(state[key].shape[2]) for key in
                   ("stem.0.weight", *(f"stages.{stage}.0.conv_a.weight" for stage in range(4))))


def _options(options: Any, key: str) -> dict[str, Any]:
    value = options.get(key) if isinstance(options, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def _from_rebias(path: Path, state: dict[str, Any]) -> LoadedCheckpoint:
    """ReBias' ``best.pth`` / ``last.pth``: its task from f's architecture, the flags its networks imply."""
    if not isinstance(state.get("g_nets"), (list, tuple)) or not state["g_nets"]:
        raise CheckpointError(f"'{path}': ReBias' checkpoint has no g_nets (a list of state dicts): found "
                              f"{type(state.get('g_nets')).__name__}")
    f_arch, f_state = _rebias_network(state["f_net"], path, "f_net")
    g_states = []
    for index, g_state in enumerate(state["g_nets"]):
        g_arch, converted = _rebias_network(g_state, path, f"g_nets[{index}]")
        if g_arch != f_arch:
            raise CheckpointError(f"'{path}': ReBias' f_net is a {f_arch} network but g_nets[{index}] a {g_arch} "
                                  "one; the originals pair networks of one family")
        g_states.append(converted)
    options = state.get("options") if isinstance(state.get("options"), Mapping) else {}
    f_config = _options(options, "f_config")
    config: dict[str, Any] = {
        "n_g_nets": len(g_states),
        "feature_pos": f_config.get("feature_pos", f_config.get("feature_position", "post")),
        "outer_criterion": options.get("outer_criterion", "RbfHSIC"),
        "f_lambda_outer": options.get("f_lambda_outer", 1), "g_lambda_inner": options.get("g_lambda_inner", 1),
    }
    if f_arch == "simple_conv":
        config.update(f_kernel_size=f_state["extractor.0.weight"].shape[-1],
                      g_kernel_size=g_states[0]["extractor.0.weight"].shape[-1])
    elif f_arch == "action":
        config.update(f_temporal_kernel_sizes=_temporal_kernels(f_state),
                      g_temporal_kernel_sizes=_temporal_kernels(g_states[0]),
                      resnet_base_width=f_state["stem.0.weight"].shape[0])
    metadata = state.get("metadata") if isinstance(state.get("metadata"), Mapping) else {}
    networks = {"f": f_state, **{f"g_{index}": g for index, g in enumerate(g_states)}}
    epoch = metadata.get("cur_epoch")
    return LoadedCheckpoint(path, REBIAS, REBIAS_TASKS[f_arch], "rebias", config, networks,
                            int(epoch) if isinstance(epoch, int) else None,
                            num_classes=f_state["fc.weight"].shape[0])


def _step_file(path: Path, state: Any) -> dict[str, Tensor]:
    if not isinstance(state, dict) or not STEP_FILE_KEYS <= set(state) or not isinstance(state["state_dict"], dict):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"'{path}' is not a DisEnt/LfF network file: found {found}, expected "
                              "{steps, state_dict, optimizer}")
    return state["state_dict"]


def _from_step_files(path: Path, state: dict[str, Any]) -> LoadedCheckpoint:
    """DisEnt's pair (``*_l`` / ``*_b``), DisEnt's vanilla ``best_model.th`` or LfF's ``model.th``."""
    weights = _step_file(path, state)
    backbone, encoder, classes = step_network(weights, path)
    step = int(state["steps"]) if isinstance(state.get("steps"), int) else None
    if not encoder:
        lff = path.name == "model.th" or backbone == "mlp_lff"
        method, flag = ("lff", "train_lff") if lff else ("vanilla_disent", "train_vanilla")
        return LoadedCheckpoint(path, LFF if lff else DISENT, None, method, {flag: True, "backbone": backbone},
                                {"f": weights}, step, num_classes=classes)
    partner = pair_partner(path)
    if partner is None:
        raise CheckpointError(f"'{path}' holds one DisEnt encoder (fc on [z_i ; z_b]) under a name that is not "
                              "DisEnt's (best_model_l.th / best_model_b.th): its other network cannot be found")
    is_intrinsic = PAIR_PATTERN.match(path.name)["side"] == "l"
    if not partner.is_file():
        side = "bias" if is_intrinsic else "intrinsic"
        raise CheckpointError(f"'{path}' is one of DisEnt's two networks; its {side} network '{partner}' is missing")
    other = _step_file(partner, safe_torch_load(partner))
    other_backbone, other_encoder, other_classes = step_network(other, partner)
    if (other_backbone, other_encoder, other_classes) != (backbone, encoder, classes):
        raise CheckpointError(f"'{path}' ({backbone}, {classes} classes) and '{partner}' ({other_backbone}"
                              f"{'' if other_encoder else ' vanilla'}, {other_classes} classes) are not one pair")
    intrinsic, bias = (weights, other) if is_intrinsic else (other, weights)
    return LoadedCheckpoint(path if is_intrinsic else partner, DISENT, None, "disent",
                            {"train_ours": True, "backbone": backbone}, {"intrinsic": intrinsic, "bias": bias}, step,
                            num_classes=classes)


def project_networks(method_state: Any) -> dict[str, dict[str, Tensor]]:
    """The network state dicts of a project checkpoint's ``method`` entry (step-based methods' ``networks``, the
    f/g trainer's ``f_net`` and ``g_nets``); empty for any other layout (seed-stacked networks)."""
    if not isinstance(method_state, Mapping):
        return {}
    if isinstance(method_state.get("networks"), Mapping):
        return dict(method_state["networks"])
    if isinstance(method_state.get("f_net"), Mapping) and isinstance(method_state.get("g_nets"), (list, tuple)):
        return {"f": method_state["f_net"], **{f"g_{i}": g for i, g in enumerate(method_state["g_nets"])}}
    return {}


def project_run_keys(task_name: str, config: Mapping[str, Any]) -> tuple[str, str]:
    """The TASKS and METHODS registry names of a project checkpoint whose ``meta`` names ``task_name`` and whose
    configuration is ``config`` (the same choice the entry script that wrote it made)."""
    if task_name.startswith("disent_"):
        from train_disent import METHOD_FLAGS
        chosen = [flag for flag in METHOD_FLAGS if config.get(flag)]
        if len(chosen) != 1:
            raise CheckpointError(f"checkpoint of task {task_name} whose configuration names {len(chosen)} of "
                                  f"{', '.join('--' + flag for flag in METHOD_FLAGS)}: expected one")
        return "disent", METHOD_FLAGS[chosen[0]]
    if task_name == "matrix":
        from utils.matrix import registry_name
        return "matrix", registry_name(str(config.get("method")))
    if task_name == "folder":
        from main_folder import METHODS as FOLDER_METHODS
        if config.get("method") not in FOLDER_METHODS:
            raise CheckpointError(f"folder checkpoint with --method {config.get('method')!r}: expected one of "
                                  f"{list(FOLDER_METHODS)}")
        return "folder", FOLDER_METHODS[config["method"]]
    fg_tasks = {"biased_mnist": "rebias", "imagenet": "rebias", "action": "rebias", "biased_mnist_seeds": "rebias_seeds"}
    if task_name not in fg_tasks:
        raise CheckpointError(f"checkpoint of an unknown task {task_name!r}: expected one of "
                              f"{sorted([*fg_tasks, 'disent_<dataset>', 'matrix', 'folder'])}")
    return task_name, fg_tasks[task_name]


def _from_project(path: Path, state: dict[str, Any]) -> LoadedCheckpoint:
    meta = state["meta"]
    missing = [key for key in ("config", "method", "trainer") if not isinstance(state.get(key), dict)]
    if missing:
        raise CheckpointError(f"'{path}' has no '{missing[0]}' entry: it is not a complete checkpoint of this "
                              "project (expected meta, trainer, method, rng, config)")
    task, method = project_run_keys(str(meta.get("task")), state["config"])
    return LoadedCheckpoint(path, PROJECT, task, method, dict(state["config"]), project_networks(state["method"]),
                            state["trainer"].get("global_step"), state=state)


def detect_format(state: Any) -> str:
    """The format of a loaded checkpoint, from its keys; a one-line :class:`CheckpointError` for anything else."""
    if isinstance(state, dict):
        if isinstance(state.get("meta"), dict):
            return PROJECT
        if REBIAS_KEYS <= set(state):
            return REBIAS
        if STEP_FILE_KEYS <= set(state):
            return DISENT
    found = sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__
    raise CheckpointError(f"unknown checkpoint format: found {found}; expected {EXPECTED}")


def read_checkpoint(pretrained_path: str | Path, which: str = "best") -> LoadedCheckpoint:
    """Find (:func:`resolve_path`), load on the CPU without running code, recognise and convert a checkpoint."""
    path = resolve_path(pretrained_path, which)
    state = safe_torch_load(path, plain_data=True)
    try:
        kind = detect_format(state)
    except CheckpointError as error:
        raise CheckpointError(f"'{path}': {error}") from None
    if kind == PROJECT:
        return _from_project(path, state)
    if kind == REBIAS:
        return _from_rebias(path, state)
    return _from_step_files(path, state)


# ---------------------------------------------------------------------------------- loading weights
def load_networks(method: Any, loaded: LoadedCheckpoint, required: bool = True) -> list[str]:
    """Copy ``loaded``'s weights into the method's networks of the same names (strictly: every key and shape);
    returns the names loaded. ``required``: every network of the method must be in the file. A network that does
    not fit, or no network in common, is a one-line :class:`CheckpointError`."""
    names = [name for name in method.networks if name in loaded.networks]
    absent = [name for name in method.networks if name not in loaded.networks]
    if not names or (required and absent):
        raise CheckpointError(f"{loaded.description} holds the networks {sorted(loaded.networks)}, but a "
                              f"{method.name} model needs {list(method.networks)}")
    for name in names:
        network: nn.Module = unwrap(method.networks[name])
        try:
            network.load_state_dict(loaded.networks[name])
        except RuntimeError as error:
            detail = " ".join(str(error).split())
            raise CheckpointError(f"{loaded.description}: its network {name!r} does not fit this {method.name} "
                                  f"model: {detail[:300]}") from None
    return names


def initialise_from(method: Any, path: str | Path) -> str:
    """``--init_from``: copy the network weights of any format's checkpoint into the method's networks of the same
    names (the others keep their initialisation); the line that says what was loaded and what starts fresh."""
    loaded = read_checkpoint(path, "best")
    names = load_networks(method, loaded, required=False)
    fresh = [name for name in method.networks if name not in names]
    kept = f"; networks {', '.join(fresh)} keep their random initialisation" if fresh else ""
    return (f"--init_from {loaded.description}: loaded the weights of {', '.join(names)}{kept}; "
            f"{FRESH_ON_INIT} (weights only)")


def refuse_original_resume(path: Path) -> None:
    """Raise a one-line :class:`CheckpointError` when ``--resume`` names an original checkpoint (it cannot continue
    a run of this project), saying what it lacks and that ``--init_from`` starts from its weights."""
    state = safe_torch_load(path, plain_data=True)
    if isinstance(state, dict) and not isinstance(state.get("meta"), dict) and (
            REBIAS_KEYS <= set(state) or STEP_FILE_KEYS <= set(state)):
        kind = REBIAS if REBIAS_KEYS <= set(state) else LFF if path.name == "model.th" else DISENT
        raise CheckpointError(f"'{path}' is {FORMAT_NAMES[kind]} checkpoint ({MISSING_TRAINER_STATE[kind]}): "
                              f"--resume cannot continue a run from it; start from its weights with --init_from "
                              f"{path} ({FRESH_ON_INIT})")


__all__ = ["LoadedCheckpoint", "read_checkpoint", "load_networks", "initialise_from", "refuse_original_resume",
           "to_project_keys", "to_original_keys"]
