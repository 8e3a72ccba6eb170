"""The papers' training protocols, and whether a run trained one: the ``protocol`` entry of ``results.json``.

A run is **paper-length** when it trained its protocol's full length (epochs of the main phase, or steps), with no
``--limit_train_batches`` / ``--limit_eval_batches`` and, where the protocol fixes it (Biased MNIST), the paper's
batch size. ``scripts/report.py`` puts only paper-length runs into the paper-comparison cells by default. Pure
Python (no torch): the report imports it, and derives the same entry for older results.json files without one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EPOCHS = "epochs"
STEPS = "steps"


@dataclass(frozen=True)
class PaperProtocol:
    """The published training length of one table: ``length`` ``unit`` at ``batch_size`` images per step (summed
    over processes); ``check_batch_size``: a run at another batch size is not the paper's protocol."""

    name: str
    unit: str
    length: int
    batch_size: int
    check_batch_size: bool = False
    steps_per_epoch: int | None = None
    """Where an epoch is a fixed number of steps (main_matrix.py): a run with another ``steps_per_epoch`` is not
    the protocol, whatever its number of epochs."""


PAPER_PROTOCOLS: dict[str, PaperProtocol] = {
    "biased_mnist": PaperProtocol("rebias_biased_mnist", EPOCHS, 80, 256, check_batch_size=True),
    "imagenet": PaperProtocol("rebias_imagenet", EPOCHS, 120, 128),
    "action": PaperProtocol("rebias_action", EPOCHS, 120, 128),
    "disent_cmnist": PaperProtocol("disent", STEPS, 50_000, 256),
    "disent_cifar10c": PaperProtocol("disent", STEPS, 50_000, 256),
    "disent_bffhq": PaperProtocol("disent", STEPS, 50_000, 64),
}
"""By task name (results.json's ``task``): ReBias (spec: Biased MNIST 80 epochs at batch 256; ImageNet and
Kinetics 120 epochs at batch 128) and DisEnt (50,000 steps; batch 256, BFFHQ 64)."""

PRESET_PROTOCOLS: dict[str, dict[str, PaperProtocol]] = {
    "lff_paper": {"disent_cmnist": PaperProtocol("lff_paper", STEPS, 23_500, 256)},
}
"""``train_disent.py --preset NAME`` (config key ``preset``) by task: LfF's own Colored MNIST protocol, 235 x 100
steps."""


def matrix_protocol(benchmark_name: Any) -> PaperProtocol | None:
    """The protocol of a main_matrix.py run: its benchmark's length in evaluation intervals, batch 256."""
    from utils.matrix import BENCHMARKS

    benchmark = BENCHMARKS.get(benchmark_name)
    if benchmark is None:
        return None
    return PaperProtocol(f"matrix_{benchmark.name}", EPOCHS, benchmark.epochs, 256, check_batch_size=True,
                         steps_per_epoch=benchmark.steps_per_epoch)


def paper_protocol(task: str, config: Mapping[str, Any]) -> PaperProtocol | None:
    """The protocol a run of ``task`` with ``config`` is measured against (None: no published length)."""
    if task == "matrix":
        return matrix_protocol(config.get("benchmark"))
    preset = config.get("preset")
    if preset in PRESET_PROTOCOLS and task in PRESET_PROTOCOLS[preset]:
        return PRESET_PROTOCOLS[preset][task]
    return PAPER_PROTOCOLS.get(task)


def precision_of(amp: Any) -> str:
    """The precision a run trained its networks in, from ``--amp``: ``bf16`` (autocast) or ``fp32`` (the papers')."""
    return "bf16" if amp == "bf16" else "fp32"


def is_unlimited(limit: Any) -> bool:
    """Whether a ``--limit_*_batches`` value keeps every batch (None, or the fraction 1.0)."""
    return limit is None or (isinstance(limit, float) and limit == 1.0)


def run_protocol(task: str, config: Mapping[str, Any], epochs: int | None, steps: int | None, world_size: int = 1,
                 data_variant: Any = None) -> dict[str, Any]:
    """The ``protocol`` entry of a run's results.json: ``name``, ``trained`` (epochs of the last phase or steps,
    in ``unit``), ``paper`` (the protocol's length), the limit flags, ``batch_size`` (summed over processes) and
    ``paper_batch_size``, ``precision`` (:func:`precision_of`), ``data_variant`` (when the task has one) and
    ``paper_length``. ``epochs``/``steps`` None = unknown (not paper-length). Flags absent from ``config`` count as
    their defaults (no limit, the paper's batch size, fp32)."""
    protocol = paper_protocol(task, config)
    limit_train, limit_eval = config.get("limit_train_batches"), config.get("limit_eval_batches")
    batch_size = config.get("batch_size")
    batch_size = batch_size * world_size if isinstance(batch_size, int) and batch_size > 0 else None
    entry: dict[str, Any] = {
        "name": protocol.name if protocol else None,
        "unit": protocol.unit if protocol else None,
        "trained": (epochs if protocol.unit == EPOCHS else steps) if protocol else None,
        "paper": protocol.length if protocol else None,
        "limit_train_batches": limit_train,
        "limit_eval_batches": limit_eval,
        "batch_size": batch_size,
        "paper_batch_size": protocol.batch_size if protocol else None,
        "precision": precision_of(config.get("amp")),
    }
    if data_variant is not None:
        entry["data_variant"] = data_variant
    entry["paper_length"] = bool(
        protocol is not None and entry["trained"] == protocol.length
        and is_unlimited(limit_train) and is_unlimited(limit_eval)
        and (not protocol.check_batch_size or batch_size is None or batch_size == protocol.batch_size)
        and (protocol.steps_per_epoch is None or config.get("steps_per_epoch") == protocol.steps_per_epoch))
    return entry


def length_label(entry: Mapping[str, Any], expected_name: str | None = None) -> str:
    """How a run departs from its paper's protocol, e.g. ``2/80 ep, 40 batches/ep, eval 10 batches, batch 64``;
    ``expected_name``: the protocol the table is about (another one is named, e.g. ``lff_paper protocol, ...``)."""
    parts = []
    name = entry.get("name")
    if expected_name is not None and name is not None and name != expected_name:
        parts.append(f"{name} protocol")
    trained, paper, unit = entry.get("trained"), entry.get("paper"), entry.get("unit")
    short_unit = {EPOCHS: "ep", STEPS: "steps"}.get(unit, unit or "")
    if trained is None:
        parts.append("length not recorded" + (f" (paper: {paper} {short_unit})" if paper is not None else ""))
    else:
        parts.append(f"{trained}/{paper if paper is not None else '?'} {short_unit}".rstrip())
    limit_train, limit_eval = entry.get("limit_train_batches"), entry.get("limit_eval_batches")
    if not is_unlimited(limit_train):
        parts.append(f"{_amount(limit_train)} batches/ep")
    if not is_unlimited(limit_eval):
        parts.append(f"eval {_amount(limit_eval)} batches")
    batch, paper_batch = entry.get("batch_size"), entry.get("paper_batch_size")
    if batch is not None and paper_batch is not None and batch != paper_batch:
        parts.append(f"batch {batch}")
    return ", ".join(parts)


def _amount(limit: Any) -> str:
    """A limit flag's value as a count (``40``) or, for a fraction, a percentage (``25%``)."""
    if isinstance(limit, float) and 0 < limit < 1:
        return f"{100 * limit:g}%"
    return f"{limit:g}" if isinstance(limit, (int, float)) else str(limit)
