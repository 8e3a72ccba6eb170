"""Evaluation: per (target, bias) cell correct/total counts, accumulated once per loader; every metric is a view.

* accuracy (the paper's "biased"/"unbiased" numbers on Biased MNIST): correct / total over the whole set;
* per-cell accuracy: a (num_classes x num_biases) matrix, e.g. the 10x10 (digit, colour) accuracy of Biased MNIST;
* cell-mean accuracy: the unweighted mean over cells holding at least ``min_count`` samples.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from itertools import islice

import torch
from torch import Tensor, nn

from utils.distributed import all_reduce_sum, is_distributed


@dataclass
class CellAccuracy:
    """Correct and total counts per (target, bias) cell."""

    correct: Tensor
    total: Tensor

    @classmethod
    def zeros(cls, num_classes: int, num_biases: int) -> "CellAccuracy":
        shape = (num_classes, num_biases)
        return cls(torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.long))

    def update(self, predictions: Tensor, targets: Tensor, biases: Tensor) -> None:
        num_biases = self.total.shape[1]
        cells = (targets * num_biases + biases).long()
        size = self.total.numel()
        hits = (predictions == targets).long()
        self.total += torch.bincount(cells, minlength=size).view_as(self.total).cpu()
        self.correct += torch.bincount(cells, weights=hits, minlength=size).long().view_as(self.correct).cpu()

    def all_reduce(self, device: torch.device) -> None:
        """Sum the counts over all processes (a no-op in a single process)."""
        if is_distributed():
            counts = all_reduce_sum(torch.stack([self.correct, self.total]).to(device)).cpu()
            self.correct, self.total = counts[0], counts[1]

    def accuracy(self) -> float:
        """Top-1 accuracy in percent over all samples."""
        total = int(self.total.sum())
        return 100.0 * int(self.correct.sum()) / total if total else float("nan")

    def per_cell(self) -> list[list[float | None]]:
        """Accuracy in percent per (target, bias) cell; ``None`` for cells without samples."""
        return [[100.0 * c / t if t else None for c, t in zip(row_c, row_t)]
                for row_c, row_t in zip(self.correct.tolist(), self.total.tolist())]

    def cell_mean(self, min_count: int = 1) -> float:
        """Unweighted mean of the per-cell accuracies (percent) over cells with at least ``min_count`` samples."""
        mask = self.total >= min_count
        if not bool(mask.any()):
            return float("nan")
        return float((100.0 * self.correct[mask] / self.total[mask]).mean())


def logits_of(network: nn.Module, x: Tensor) -> Tensor:
    """The logits of a network whose forward returns either logits or ``(logits, features)``."""
    output = network(x)
    return output[0] if isinstance(output, tuple) else output


@torch.no_grad()
def evaluate(predictors: Mapping[str, nn.Module], loaders: Mapping[str, Iterable], num_classes: int,
             num_biases: int, limit_batches: int | None = None,
             autocast: AbstractContextManager | None = None) -> dict[str, dict[str, CellAccuracy]]:
    """Run every predictor in eval mode over every loader; returns ``{loader: {predictor: CellAccuracy}}``.

    Loaders yield ``(x, target, bias, ...)``; networks are put back into their previous train/eval mode. Under
    torchrun each process evaluates its shard and the counts are summed over processes.
    """
    modes = {name: net.training for name, net in predictors.items()}
    for net in predictors.values():
        net.eval()
    results: dict[str, dict[str, CellAccuracy]] = {}
    try:
        for loader_name, loader in loaders.items():
            cells = {name: CellAccuracy.zeros(num_classes, num_biases) for name in predictors}
            for batch in islice(loader, limit_batches):
                x, targets, biases = batch[0], batch[1], batch[2]
                with autocast or nullcontext():
                    for name, net in predictors.items():
                        cells[name].update(logits_of(net, x).argmax(dim=1), targets, biases)
            device = next(next(iter(predictors.values())).parameters()).device
            for cell in cells.values():
                cell.all_reduce(device)
            results[loader_name] = cells
    finally:
        for name, net in predictors.items():
            net.train(modes[name])
    return results
