"""The Method interface: a de-biasing method builds its networks and optimisers and performs one training step.

A method never loops over data, writes files or picks devices; the :class:`trainer.Trainer` does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from munch import Munch
from torch import Tensor, nn

from datasets.tensor_loader import Batch


@dataclass(frozen=True)
class Phase:
    """A stage of training (e.g. g pre-training, then the main minimax game) lasting ``epochs`` epochs.

    An epoch is one pass over the training loader, or ``steps_per_epoch`` steps for step-based training (DisEnt:
    an "epoch" is then the interval between two evaluations, the loader cycling as needed); a step-based phase of
    ``num_steps`` steps ends with a shorter epoch when ``num_steps`` is not a multiple of ``steps_per_epoch``."""

    name: str
    epochs: int
    steps_per_epoch: int | None = None
    num_steps: int | None = None

    @classmethod
    def of_steps(cls, name: str, num_steps: int, steps_per_epoch: int) -> Phase:
        """A step-based phase: ``num_steps`` steps in epochs of ``steps_per_epoch`` (the last one possibly shorter)."""
        return cls(name, math.ceil(num_steps / steps_per_epoch), steps_per_epoch, num_steps)

    def steps_in_epoch(self, epoch: int) -> int | None:
        """Steps of epoch ``epoch`` (0-based) of a step-based phase; None for a pass over the training loader."""
        if self.steps_per_epoch is None or self.num_steps is None:
            return self.steps_per_epoch
        return min(self.steps_per_epoch, self.num_steps - epoch * self.steps_per_epoch)


class Method:
    """Base class. Subclasses set ``self.networks`` and implement the training step."""

    name = "method"
    networks: dict[str, nn.Module]

    @classmethod
    def check_config(cls, config: Munch) -> None:
        """Refuse flags this method cannot honour (:class:`ConfigError`); run before the task reads any data."""

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def training_step(self, batch: Batch, phase: Phase) -> dict[str, Tensor]:
        """Update the parameters on one batch; return detached scalar tensors to log."""
        raise NotImplementedError

    def end_epoch(self, phase: Phase, train_loader: Any) -> None:
        """Hook after each epoch's training, before its evaluation (learning-rate schedules)."""

    def between_epochs(self, phase: Phase, train_loader: Any) -> None:
        """Hook after an epoch's evaluation when another epoch of ``phase`` follows (kernel-radius updates)."""

    def predictors(self) -> dict[str, nn.Module]:
        """The networks to evaluate, by name; the one named ``'f'`` is the method's final model."""
        raise NotImplementedError

    def learning_rates(self) -> dict[str, float]:
        return {}

    def results_fields(self) -> dict[str, Any]:
        """Method-specific entries of ``results.json``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def train(self, mode: bool = True) -> None:
        for network in self.networks.values():
            network.train(mode)
