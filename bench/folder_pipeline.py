"""Throughput of the folder task's data pipeline (tasks/folder.py) against the device-resident loader (prints only).

    python bench/folder_pipeline.py [--images 256] [--image_size 224] [--batch_size 32] [--workers 0,2]
        [--device cpu] [--network resnet18] [--steps 4] [--data_dir DIR]

Writes ``--images`` shape-on-texture images of ``--image_size`` px (datasets/make_folder_example.py textures; or
reads ``--data_dir``), then prints the training images per second that one pass over the train split delivers:
the DataLoader pipeline (PNG decoding, ``--augment crop_flip``, [0, 1] conversion on the device) with each number
of ``--workers``, the same with ``--cache_images`` in its second pass, and the device-resident TensorLoader over the
same images decoded once (``--preload``). Last, for each pipeline, the share of a Vanilla training step of
``--network`` (plain cross-entropy, Adam) spent waiting for the next batch over ``--steps`` steps after one warm-up.
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import fire
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import main_folder  # noqa: E402
from bench.common import synchronize  # noqa: E402
from datasets.make_folder_example import textures  # noqa: E402
from tasks.folder import FolderTask  # noqa: E402


def images_per_second(loader: Iterable, device: torch.device) -> float:
    """Images per second of one pass over ``loader``."""
    start, images = time.perf_counter(), 0
    for batch in loader:
        images += len(batch.target)
    synchronize(device)
    return images / (time.perf_counter() - start)


def data_wait_share(task: FolderTask, steps: int, device: torch.device) -> float:
    """The share of ``steps`` Vanilla training steps of f (after a warm-up step) spent waiting for data."""
    net = task.build_model(disentangle=False).to(device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    batches = iter(task.train_loader)
    waiting = total = 0.0
    for step in range(steps + 1):
        start = time.perf_counter()
        batch = next(batches)
        fetched = time.perf_counter()
        loss = F.cross_entropy(net(batch.x), batch.target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize(device)
        if step:
            waiting, total = waiting + fetched - start, total + time.perf_counter() - start
    return waiting / total


def main(images: int = 256, image_size: int = 224, batch_size: int = 32, workers: str | int | tuple = "0,2",
         device: str = "cpu", network: str = "resnet18", steps: int = 4, data_dir: str | None = None) -> None:
    torch_device = torch.device(device)
    worker_counts = [int(w) for w in (workers if isinstance(workers, tuple) else str(workers).split(","))]
    with tempfile.TemporaryDirectory() as scratch:
        if data_dir is None:
            start = time.perf_counter()
            data_dir = textures(f"{scratch}/data", n_train=images, n_valid=batch_size, n_test=batch_size,
                                size=image_size)
            print(f"wrote {images} images of {image_size} px in {time.perf_counter() - start:.1f} s")
        pipelines = {f"DataLoader, {w} workers": {"num_workers": w, "augment": "crop_flip"} for w in worker_counts}
        pipelines[f"DataLoader, {worker_counts[-1]} workers, cached (2nd pass)"] = {
            "num_workers": worker_counts[-1], "augment": "crop_flip", "cache_images": True}
        pipelines["device-resident (decoded once)"] = {"preload": True}
        tasks = {}
        for name, flags in pipelines.items():
            config, _ = main_folder.resolve({"data_dir": data_dir, "method": "vanilla", "f": network,
                                             "batch_size": batch_size, "device": device, "select_on": "final",
                                             "image_size": image_size, **flags})
            start = time.perf_counter()
            task = FolderTask(config, torch_device)
            built = time.perf_counter() - start
            if config.cache_images:
                images_per_second(task.train_loader, torch_device)
            rate = images_per_second(task.train_loader, torch_device)
            print(f"{name}: {rate:.0f} images/s (task built in {built:.1f} s)")
            tasks[name] = task
        for name, task in tasks.items():
            share = data_wait_share(task, steps, torch_device)
            print(f"{network} training step, {name}: {100 * share:.1f} % of the step waiting for data")


if __name__ == "__main__":
    fire.Fire(main)
