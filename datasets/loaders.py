"""DataLoader-based loaders for datasets too large for device memory (ImageNet, videos, generated image folders).

Datasets return ``(x, target, bias, index)`` per item; the loader yields :class:`Batch` tuples on the training
device, exposes ``set_epoch`` (the order of an epoch depends on (seed, epoch) only, so resumed runs see the same
batches) and shards every epoch across processes under torchrun.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from datasets.tensor_loader import Batch, evaluation_sample
from utils.distributed import rank, world_size
from utils.seed import derived_seed


class EpochSeededSampler(Sampler[int]):
    """Single-process sampler: a permutation seeded by (seed, epoch), or the identity order without shuffling."""

    def __init__(self, size: int, shuffle: bool, seed: int):
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.size))
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.size, generator=generator).tolist())


class ShardSampler(Sampler[int]):
    """Evaluation sampler under torchrun: process r of W takes items r, r+W, ... (no padding, no duplicates)."""

    def __init__(self, size: int):
        self.indices = list(range(rank(), size, world_size()))

    def set_epoch(self, epoch: int) -> None:
        del epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def seed_worker(worker_id: int) -> None:
    """Seed NumPy and Python's ``random`` in a worker from torch's per-worker seed (itself from the loader's)."""
    import random

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class DeviceLoader:
    """Wrap a DataLoader over ``(x, target, bias, index)`` items: yields :class:`Batch` on ``device``."""

    def __init__(self, dataset: Dataset, batch_size: int, shuffle: bool, device: torch.device, seed: int = 0,
                 num_workers: int = 4, drop_last: bool = False):
        if world_size() > 1 and shuffle:
            self.sampler: Sampler[int] = DistributedSampler(dataset, num_replicas=world_size(), rank=rank(),
                                                            shuffle=True, seed=seed, drop_last=True)
        elif world_size() > 1:
            self.sampler = ShardSampler(len(dataset))
        else:
            self.sampler = EpochSeededSampler(len(dataset), shuffle, seed)
        self.device = device
        self.seed = seed
        self.worker_seed = derived_seed(seed, 7)
        self.loader = self._data_loader(dataset, batch_size, self.sampler, num_workers, drop_last)
        self.dataset = dataset

    def _data_loader(self, dataset: Dataset, batch_size: int, sampler: Sampler[int] | list[int], num_workers: int,
                     drop_last: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.worker_seed)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                          pin_memory=self.device.type == "cuda", drop_last=drop_last, worker_init_fn=seed_worker,
                          generator=generator, persistent_workers=False)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.loader.generator.manual_seed(derived_seed(self.worker_seed, epoch))

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        return self._on_device(self.loader)

    def sample(self, num_batches: int) -> Iterator[Batch]:
        """``num_batches`` batches (per process) of samples drawn across the whole dataset, seeded by the loader's
        seed (:func:`datasets.tensor_loader.evaluation_sample`): a limited evaluation that sees every class."""
        batch_size = self.loader.batch_size
        count = min(len(self.dataset), num_batches * batch_size * world_size())
        indices = evaluation_sample(len(self.dataset), count, self.seed)[rank()::world_size()].tolist()
        return self._on_device(self._data_loader(self.dataset, batch_size, indices, self.loader.num_workers, False))

    def _on_device(self, loader: DataLoader) -> Iterator[Batch]:
        non_blocking = self.device.type == "cuda"
        for parts in loader:
            yield Batch(*(part.to(self.device, non_blocking=non_blocking) for part in parts))
