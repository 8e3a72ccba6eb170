"""Shared pieces of the benchmarks: stand-in tasks on synthetic batches, and the timers of training steps,
evaluation and ReBias' kernel-radius updates.

A stand-in task keeps the real task's network builders (``build_f``/``build_g`` or ``build_model``) and replaces
its data with one random batch of the protocol's shape that already sits on the device, repeated: the networks'
cost alone, without any dataset file.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from itertools import cycle, islice
from typing import Any

import torch
from munch import Munch

from datasets.tensor_loader import Batch
from evaluator import evaluate
from methods.base import Method, Phase
from methods.rebias import ReBias
from tasks.action import ActionTask
from tasks.base import Task
from tasks.disent import DisEntTask, input_convention
from tasks.imagenet import ImageNetTask
from utils.distributed import memory_format_for


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (timings on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(shape: Sequence[int], num_classes: int, device: torch.device, generator: torch.Generator) -> Batch:
    """A batch of ``shape[0]`` uniform [0, 1) inputs of ``shape`` with random targets, bias 0, indices 0..N-1."""
    size = shape[0]
    return Batch(torch.rand(*shape, generator=generator).to(device),
                 torch.randint(0, num_classes, (size,), generator=generator).to(device),
                 torch.zeros(size, dtype=torch.long, device=device), torch.arange(size, device=device))


class SyntheticData(Task):
    """Mixin that replaces a task's data (put it before the task class): ``repeats`` references to one random batch
    of ``train_shape`` as the training loader, and likewise per evaluation loader of ``eval_shapes``. The task's
    own ``__init__``, which reads dataset files, is not run."""

    def __init__(self, config: Munch, device: torch.device, num_classes: int, train_shape: Sequence[int],
                 eval_shapes: Mapping[str, Sequence[int]], criterion_extras: dict[str, Any], repeats: int = 1):
        self.config = config
        self.num_classes = num_classes
        self.criterion_extras = criterion_extras
        generator = torch.Generator().manual_seed(0)
        self.train_loader = [random_batch(train_shape, num_classes, device, generator)] * repeats
        self.eval_loaders = {name: [random_batch(shape, num_classes, device, generator)] * repeats
                             for name, shape in eval_shapes.items()}


class SyntheticImageNetTask(SyntheticData, ImageNetTask):
    """9-class ImageNet's ResNet-18 f and BagNet-18 g on synthetic ``config.image_size`` images; ``eval_sets`` names
    the evaluation loaders (batches of the training shape)."""

    def __init__(self, config: Munch, device: torch.device, eval_sets: Iterable[str] = (), repeats: int = 1):
        images = (config.batch_size, 3, config.image_size, config.image_size)
        super().__init__(config, device, ImageNetTask.num_classes, images, {name: images for name in eval_sets},
                         {"feat_dim": 512, "num_classes": ImageNetTask.num_classes}, repeats)


class SyntheticActionTask(SyntheticData, ActionTask):
    """Kinetics-10's 3D ResNet f and frame-wise 2D ResNet g on synthetic clips of ``config``'s shape: training
    batches of single clips, ``unbiased`` (Mimetics-10) batches of ``num_clips`` test-size clips per video and
    ``biased`` (Kinetics-10 val, the original protocol) batches of single training-size clips, as ActionTask
    batches them."""

    def __init__(self, config: Munch, device: torch.device, repeats: int = 1):
        clips = (config.batch_size, 3, config.num_frames, config.crop_size, config.crop_size)
        videos = (max(1, config.batch_size // config.num_clips), config.num_clips, 3, config.num_frames,
                  config.test_crop_size, config.test_crop_size)
        classes = ActionTask.num_classes
        super().__init__(config, device, classes, clips, {"unbiased": videos, "biased": clips},
                         {"feat_dim": 32 * config.resnet_base_width, "num_classes": classes}, repeats)


class SyntheticDisEntTask(SyntheticData, DisEntTask):
    """A DisEnt dataset's MLP or ResNet-18 on synthetic images; ``train_size`` random training targets size the
    per-sample loss EMAs of LfF and DisEnt as the real training set does. The MLPs take their inputs divided by 255
    beforehand, as from the real task (the random images are divided once here)."""

    def __init__(self, config: Munch, device: torch.device, train_size: int, **data: Any):
        super().__init__(config, device, **data)
        self.backbone, self.divided_at_load = input_convention(config)
        if self.divided_at_load:
            self.train_loader = divided_by_255(self.train_loader)
            self.eval_loaders = {name: divided_by_255(batches) for name, batches in self.eval_loaders.items()}
        self.num_biases = self.num_classes
        generator = torch.Generator().manual_seed(1)
        self.train_targets = torch.randint(0, self.num_classes, (train_size,), generator=generator).to(device)


def divided_by_255(batches: list[Batch]) -> list[Batch]:
    """A synthetic loader (references to one batch) with that batch's images divided by 255 once."""
    divided = batches[0]._replace(x=batches[0].x / 255)
    return [divided] * len(batches)


def time_steps(method: Method, batches: Iterable[Batch], phase: Phase, steps: int, warmup: int,
               device: torch.device, channels_last: bool = False) -> float:
    """Seconds per training step of ``phase`` over ``steps`` steps after ``warmup`` steps, cycling over
    ``batches`` (fetching a batch is timed, as the Trainer's steps include it)."""
    stream = cycle(batches)
    method.train()
    total = 0.0
    for step in range(warmup + steps):
        synchronize(device)
        start = time.perf_counter()
        batch = next(stream)
        if channels_last:
            batch = batch._replace(x=batch.x.contiguous(memory_format=memory_format_for(batch.x.dim())))
        method.training_step(batch, phase)
        synchronize(device)
        if step >= warmup:
            total += time.perf_counter() - start
    return total / steps


def time_evaluation(method: Method, task: Task, steps: int, warmup: int, device: torch.device,
                    autocast: Callable[[], AbstractContextManager]) -> dict[str, float]:
    """Seconds per evaluated sample (image, clip or multi-clip video) of every evaluation loader of ``task``, with
    the project's evaluator over its first ``steps`` batches after a warm-up over its first ``warmup`` batches."""
    predictors = method.predictors()
    seconds = {}
    for name, loader in task.eval_loaders.items():
        if warmup:
            evaluate(predictors, {name: loader}, task.num_classes, task.num_biases, limit_batches=warmup,
                     autocast=autocast())
        synchronize(device)
        start = time.perf_counter()
        evaluate(predictors, {name: loader}, task.num_classes, task.num_biases, limit_batches=steps,
                 autocast=autocast())
        synchronize(device)
        samples = sum(len(batch.target) for batch in islice(loader, steps))
        seconds[name] = (time.perf_counter() - start) / samples
    return seconds


def sigma_batches(loader_length: int, sampling_rate: float) -> int:
    """Training batches one median-heuristic radius update reads (as ``ReBias.update_sigmas`` counts them)."""
    return min(int(loader_length * sampling_rate) + 1, loader_length)


def time_sigma_update(method: ReBias, batches: Sequence[Batch], device: torch.device) -> float:
    """Seconds per training batch of ``method.update_sigmas`` (forward of f and every g, pairwise distances)."""
    synchronize(device)
    start = time.perf_counter()
    method.update_sigmas(batches)
    synchronize(device)
    return (time.perf_counter() - start) / sigma_batches(len(batches), method.config.sigma_update_sampling_rate)
