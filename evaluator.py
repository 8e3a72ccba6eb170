"""Evaluation: per (target, bias) cell correct/total counts, accumulated once per loader; every metric is a view.

* accuracy (the paper's "biased"/"unbiased" numbers on Biased MNIST): correct / total over the whole set;
* per-cell accuracy: a (num_classes x num_biases) matrix, e.g. the 10x10 (digit, colour) accuracy of Biased MNIST;
* cell-mean accuracy: the unweighted mean over cells holding at least ``min_count`` samples.

A bias of shape (N, K) (K bias labellings of the same samples, e.g. the three texture clusterings of 9-class
ImageNet) gives K stacked (target, bias) tables; the cell-mean accuracy is then the mean of the K tables' cell means
(ReBias spec §9).
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from itertools import islice

import torch
from torch import Tensor, nn

from utils.config import resolve_limit
from utils.distributed import all_reduce_sum, is_distributed


@dataclass
class CellAccuracy:
    """Correct and total counts per (target, bias) cell: shape (classes, biases), or (tables, classes, biases) for
    biases given as (N, tables) columns."""

    correct: Tensor
    total: Tensor

    @classmethod
    def zeros(cls, num_classes: int, num_biases: int, num_tables: int | None = None) -> "CellAccuracy":
        shape = (num_classes, num_biases) if num_tables is None else (num_tables, num_classes, num_biases)
        return cls(torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.long))

    @property
    def stacked(self) -> bool:
        """Whether this holds one table per bias labelling (biases of shape (N, K))."""
        return self.total.dim() == 3

    def update(self, predictions: Tensor, targets: Tensor, biases: Tensor) -> None:
        num_classes, num_biases = self.total.shape[-2:]
        columns = biases if self.stacked else biases.unsqueeze(1)
        table_offsets = torch.arange(columns.shape[1], device=columns.device) * (num_classes * num_biases)
        cells = (table_offsets + (targets * num_biases).unsqueeze(1) + columns).long().flatten()
        size = self.total.numel()
        hits = (predictions == targets).unsqueeze(1).expand_as(columns).flatten()
        self.total += torch.bincount(cells, minlength=size).view_as(self.total).cpu()
        # The hits' cells counted (bincount with weights has no deterministic CUDA kernel, see --deterministic).
        self.correct += torch.bincount(cells[hits], minlength=size).view_as(self.correct).cpu()

    def tables(self) -> list["CellAccuracy"]:
        """One (classes x biases) table per bias labelling (a single one for 1-D biases)."""
        if not self.stacked:
            return [self]
        return [CellAccuracy(correct, total) for correct, total in zip(self.correct, self.total)]

    def all_reduce(self, device: torch.device) -> None:
        """Sum the counts over all processes (a no-op in a single process)."""
        if is_distributed():
            counts = all_reduce_sum(torch.stack([self.correct, self.total]).to(device)).cpu()
            self.correct, self.total = counts[0], counts[1]

    def accuracy(self) -> float:
        """Top-1 accuracy in percent over all samples."""
        table = self.tables()[0]
        total = int(table.total.sum())
        return 100.0 * int(table.correct.sum()) / total if total else float("nan")

    def per_cell(self) -> list:
        """Accuracy in percent per (target, bias) cell; ``None`` for cells without samples. Stacked tables give one
        such matrix per bias labelling."""
        if self.stacked:
            return [table.per_cell() for table in self.tables()]
        return [[100.0 * c / t if t else None for c, t in zip(row_c, row_t)]
                for row_c, row_t in zip(self.correct.tolist(), self.total.tolist())]

    def worst_group(self) -> float | None:
        """The lowest per-cell accuracy (percent) over cells holding samples, over every table of stacked ones;
        None when no cell holds any."""
        values = [value for table in self.tables() for row in table.per_cell() for value in row if value is not None]
        return min(values) if values else None

    def cell_mean(self, min_count: int = 1) -> float:
        """Unweighted mean of the per-cell accuracies (percent) over cells with at least ``min_count`` samples;
        for stacked tables, the mean over the tables of that value (ReBias' ImageNet "unbiased" accuracy)."""
        if self.stacked:
            return float(sum(table.cell_mean(min_count) for table in self.tables()) / self.total.shape[0])
        mask = self.total >= min_count
        if not bool(mask.any()):
            return float("nan")
        return float((100.0 * self.correct[mask] / self.total[mask]).mean())


MULTI_CLIP_DIM = 6
"""Inputs with this many dimensions, ``(N, clips, C, T, H, W)``, hold several clips per video."""


def logits_of(network: nn.Module, x: Tensor) -> Tensor:
    """The logits of a network whose forward returns either logits or ``(logits, features)``; for a multi-clip
    batch ``(N, clips, C, T, H, W)``, the per-video scores of :func:`multi_clip_scores`."""
    if x.dim() == MULTI_CLIP_DIM:
        return multi_clip_scores(network, x)
    output = network(x)
    return output[0] if isinstance(output, tuple) else output


def multi_clip_scores(network: nn.Module, clips: Tensor) -> Tensor:
    """Per-video scores of ``(N, clips, C, T, H, W)``: the log of the clips' summed softmax probabilities, whose
    argmax is the video's prediction (ReBias spec §9, action recognition)."""
    videos, num_clips = clips.shape[:2]
    logits = logits_of(network, clips.flatten(0, 1))
    return logits.float().softmax(dim=1).view(videos, num_clips, -1).sum(dim=1).log()


def limited(loader: Collection, limit: int | float | None) -> Iterable:
    """The loader's batches under ``--limit_eval_batches``: all (None), or ``limit`` batches (an int) or that
    fraction of them (a float in (0, 1], as :func:`utils.config.resolve_limit` reads it). A limit below the loader's
    length evaluates a seeded sample of the whole split (the loader's ``sample``: the same samples at every
    evaluation), not its first batches, which in a class-sorted split hold one class only; a plain sequence of
    batches (no ``sample``) is cut after that many."""
    if limit is None:
        return loader
    batches = resolve_limit(limit, len(loader))
    if batches >= len(loader):
        return loader
    sample = getattr(loader, "sample", None)
    return sample(batches) if sample is not None else islice(loader, batches)


@torch.no_grad()
def evaluate(predictors: Mapping[str, nn.Module], loaders: Mapping[str, Collection], num_classes: int,
             num_biases: int, limit_batches: int | float | None = None,
             autocast: AbstractContextManager | None = None) -> dict[str, dict[str, CellAccuracy]]:
    """Run every predictor in eval mode over every loader; returns ``{loader: {predictor: CellAccuracy}}``.

    Loaders yield ``(x, target, bias, ...)``; a bias of shape (N, K) gives K stacked tables. ``limit_batches`` caps
    each loader's batches (a count or a fraction of its length, drawn across the split, see :func:`limited`).
    Networks are put back into their previous train/eval mode. Under torchrun each process evaluates its shard and
    the counts are summed over processes.
    """
    modes = {name: net.training for name, net in predictors.items()}
    for net in predictors.values():
        net.eval()
    results: dict[str, dict[str, CellAccuracy]] = {}
    try:
        for loader_name, loader in loaders.items():
            cells: dict[str, CellAccuracy] = {}
            for batch in limited(loader, limit_batches):
                x, targets, biases = batch[0], batch[1], batch[2]
                if not cells:
                    num_tables = biases.shape[1] if biases.dim() == 2 else None
                    cells = {name: CellAccuracy.zeros(num_classes, num_biases, num_tables) for name in predictors}
                with autocast or nullcontext():
                    for name, net in predictors.items():
                        cells[name].update(logits_of(net, x).argmax(dim=1), targets, biases)
            cells = cells or {name: CellAccuracy.zeros(num_classes, num_biases) for name in predictors}
            device = next(next(iter(predictors.values())).parameters()).device
            for cell in cells.values():
                cell.all_reduce(device)
            results[loader_name] = cells
    finally:
        for name, net in predictors.items():
            net.train(modes[name])
    return results
