"""The Method interface: a de-biasing method builds its networks and optimisers and performs one training step.

A method never loops over data, writes files or picks devices; the :class:`trainer.Trainer` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from datasets.tensor_loader import Batch


@dataclass(frozen=True)
class Phase:
    """A stage of training (e.g. g pre-training, then the main minimax game) lasting ``epochs`` epochs.

    An epoch is one pass over the training loader, or ``steps_per_epoch`` steps for step-based training (DisEnt:
    an "epoch" is then the interval between two evaluations, the loader cycling as needed)."""

    name: str
    epochs: int
    steps_per_epoch: int | None = None


class Method:
    """Base class. Subclasses set ``self.networks`` and implement the training step."""

    name = "method"
    networks: dict[str, nn.Module]

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def training_step(self, batch: Batch, phase: Phase) -> dict[str, Tensor]:
        """Update the parameters on one batch; return detached scalar tensors to log."""
        raise NotImplementedError

    def end_epoch(self, phase: Phase, train_loader: Any) -> None:
        """Hook after each epoch of ``phase`` (learning-rate schedules, kernel-radius updates)."""

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
