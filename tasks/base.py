"""The Task interface: the data of one experiment (a train loader and evaluation loaders yielding
``(x, target, bias, index)``) and the builders of its networks."""
from __future__ import annotations

from typing import Any

from munch import Munch
from torch import nn

from evaluator import CellAccuracy


class Task:
    """Base class: subclasses fill the attributes below."""

    name: str
    num_classes: int
    num_biases: int
    train_loader: Any
    eval_loaders: dict[str, Any]
    criterion_extras: dict[str, Any]
    selection: tuple[str, str] | None = None
    """(evaluation loader, predictor) whose headline metric selects the best checkpoint; None = final model."""

    @classmethod
    def name_for(cls, config: Munch) -> str:
        """The name a task of ``config`` will have, known before its data are read (``--resume`` checks it first)."""
        return cls.name

    def build_f(self) -> nn.Module:
        raise NotImplementedError

    def build_g(self) -> nn.Module:
        raise NotImplementedError

    def results_fields(self) -> dict[str, Any]:
        """Task-specific keys of ``results.json`` (e.g. the training correlation)."""
        return {}

    def data_fingerprint(self) -> str | None:
        """A digest of the data a run trains on, stored in its checkpoints and required on resume, for tasks whose
        data are not fixed by their flags (a folder dataset); None where the flags name the data."""
        return None

    def metric(self, loader_name: str, cells: CellAccuracy) -> float:
        """The headline number of one evaluation loader (plain accuracy unless the task defines otherwise)."""
        return cells.accuracy()

    def extra_metrics(self, loader_name: str, cells: CellAccuracy) -> dict[str, float]:
        """More named metrics of one evaluation loader (e.g. bias-aligned / bias-conflicting accuracy)."""
        return {}
