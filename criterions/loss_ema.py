"""Per-sample loss EMA with class-wise max normalisation, and DisEnt's relative difficulty (Eq. 1) / LfF's weight."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class PerSampleLossEMA:
    """Exponential moving average of every training sample's loss (LfF/DisEnt ``util.EMA``).

    ``update(losses, indices)``: ``p[i] <- alpha * p[i] + (1 - alpha * u[i]) * loss_i`` and ``u[i] <- 1``, so the
    first visit stores the loss itself (``p`` starts at 0). ``normalised(indices)`` divides ``p[i]`` by the maximum
    of ``p`` over all training samples of i's class (never-visited samples count as 0); a class whose maximum is 0
    gives 0 instead of the original's NaN. Tensors live on the device of ``labels``; move them with :meth:`to`.

    ``p`` is stored class by class in a zero-padded ``(num_classes, largest class)`` table, so that the class
    maxima of every step are one row-wise max instead of a scatter over the whole training set (the padding plays
    the role of the original's zero-initialised maxima); :attr:`values` gives ``p`` in sample order.
    """

    def __init__(self, labels: Tensor, num_classes: int | None = None, alpha: float = 0.7):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.labels = labels.long()
        self.num_classes = int(num_classes if num_classes is not None else int(self.labels.max()) + 1)
        self.alpha = alpha
        self.slots, width = class_table_slots(self.labels, self.num_classes)
        self.table = torch.zeros(self.num_classes, width, device=self.labels.device)
        self.updated = torch.zeros(len(self.labels), device=self.labels.device)

    @property
    def values(self) -> Tensor:
        """``p`` in sample order (a copy)."""
        return self.table.view(-1)[self.slots]

    def to(self, device: torch.device | str) -> "PerSampleLossEMA":
        self.labels, self.slots, self.table, self.updated = (
            t.to(device) for t in (self.labels, self.slots, self.table, self.updated))
        return self

    @torch.no_grad()
    def update(self, losses: Tensor, indices: Tensor) -> None:
        """Fold the detached per-sample ``losses`` of the samples ``indices`` into the average."""
        indices = indices.to(self.updated.device)
        losses = losses.detach().to(self.table)
        flat, slots = self.table.view(-1), self.slots[indices]
        flat[slots] = self.alpha * flat[slots] + (1 - self.alpha * self.updated[indices]) * losses
        self.updated[indices] = 1.0

    @torch.no_grad()
    def class_max(self) -> Tensor:
        """``(num_classes,)`` maximum EMA value over all training samples of each class (0 if none is positive)."""
        return self.table.amax(dim=1).clamp_min_(0)  # the largest class' row has no zero padding

    @torch.no_grad()
    def normalised(self, indices: Tensor) -> Tensor:
        """EMA values of ``indices`` divided by their class' maximum (spec §5.3 step 3)."""
        indices = indices.to(self.updated.device)
        maxima = self.class_max()[self.labels[indices]]
        values = self.table.view(-1)[self.slots[indices]]
        return torch.where(maxima > 0, values / maxima.clamp_min(torch.finfo(values.dtype).tiny),
                           torch.zeros_like(values))

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "num_classes": self.num_classes, "labels": self.labels.clone(),
                "values": self.values, "updated": self.updated.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["labels"].shape != self.labels.shape or not torch.equal(state["labels"].to(self.labels),
                                                                          self.labels):
            raise ValueError("PerSampleLossEMA state was saved for a different training set (labels differ)")
        if state["num_classes"] != self.num_classes:
            raise ValueError(f"PerSampleLossEMA state has {state['num_classes']} classes, this EMA {self.num_classes}")
        self.alpha = state["alpha"]
        self.table.zero_()
        self.table.view(-1)[self.slots] = state["values"].to(self.table)
        self.updated = state["updated"].to(self.updated)


def class_table_slots(labels: Tensor, num_classes: int) -> tuple[Tensor, int]:
    """Flat position of every sample in a ``(num_classes, width)`` table, and the width (the largest class' size,
    at least 1): row = the sample's class, column = its rank among the samples of its class (in sample order)."""
    counts = torch.bincount(labels, minlength=num_classes)
    width = max(int(counts.max()), 1) if len(labels) else 1
    order = torch.argsort(labels, stable=True)
    first_of_class = torch.cumsum(counts, 0) - counts
    ranks = torch.empty_like(labels)
    ranks[order] = torch.arange(len(labels), device=labels.device) - first_of_class[labels[order]]
    return labels * width + ranks, width


def relative_difficulty(loss_bias: Tensor, loss_intrinsic: Tensor, eps: float = 1e-8) -> Tensor:
    """DisEnt Eq. 1 / LfF Eq. 3: ``W(x) = L_b / (L_b + L_i + eps)`` from class-normalised EMA losses, no gradient."""
    return (loss_bias / (loss_bias + loss_intrinsic + eps)).detach()
