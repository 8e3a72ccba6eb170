"""Training throughput of the 9-class ImageNet networks: Vanilla and ReBias steps of ResNet-18 (f) + BagNet-18 (g).

    python bench/throughput_imagenet.py [--device cuda] [--image_size 224] [--batch_size 128] [--amp none|bf16]
        [--channels_last] [--compile] [--steps 10] [--warmup 3] [--train_root IN/train --num_workers 16]

The step benchmark feeds random images that already sit on the device (the networks' cost alone). With
``--train_root`` it also measures how many training images per second the data loader (JPEG decoding,
RandomResizedCrop, flip, normalisation in ``--num_workers`` processes) delivers, to compare with the step rate.
"""
from __future__ import annotations

import sys
import time
from itertools import islice
from pathlib import Path

import fire
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SyntheticImageNetTask, time_steps  # noqa: E402
from datasets.imagenet import NineClassImageNet  # noqa: E402
from datasets.loaders import DeviceLoader  # noqa: E402
from experiment import resolve_device  # noqa: E402
from main_imagenet import DEFAULTS  # noqa: E402
from methods.rebias import ReBias  # noqa: E402
from trainer import autocast_factory  # noqa: E402
from utils.config import build_config  # noqa: E402
from utils.seed import seed_everything  # noqa: E402


def measure_loader(train_root: str, batch_size: int, image_size: int, num_workers: int, batches: int,
                   device: torch.device) -> float:
    """Training images per second delivered by the data loader (after its first batch)."""
    dataset = NineClassImageNet(train_root, train=True, image_size=image_size)
    loader = DeviceLoader(dataset, batch_size, shuffle=True, device=device, num_workers=num_workers)
    iterator = iter(loader)
    next(iterator)
    start, images = time.perf_counter(), 0
    for batch in islice(iterator, batches):
        images += len(batch.target)
    return images / (time.perf_counter() - start)


def main(device: str | None = None, image_size: int = 224, batch_size: int = 128, amp: str = "none",
         channels_last: bool = False, compile: bool = False, steps: int = 10, warmup: int = 3,
         train_root: str | None = None, num_workers: int = 8, loader_batches: int = 20) -> None:
    torch_device = resolve_device(device)
    autocast = autocast_factory(torch_device, amp)
    name = torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "cpu"
    print(f"device={torch_device} ({name}) threads={torch.get_num_threads()} image_size={image_size} "
          f"batch={batch_size} amp={amp} channels_last={channels_last} compile={compile} steps={steps} "
          f"warmup={warmup} torch={torch.__version__}")
    base_seconds = None
    for label, overrides in (("Vanilla (f and g, CE only)", {"f_lambda_outer": 0, "g_lambda_inner": 0}),
                             ("ReBias (HSIC, sigma fixed)", {"rbf_sigma_x": 1, "rbf_sigma_y": 1})):
        config = build_config(DEFAULTS, {"batch_size": batch_size, "image_size": image_size, "amp": amp,
                                         "channels_last": channels_last, "compile": compile, **overrides},
                              untyped=("rbf_sigma_x", "rbf_sigma_y"))
        seed_everything(0)
        task = SyntheticImageNetTask(config, torch_device, repeats=2)
        method = ReBias(config, task, torch_device, autocast)
        seconds = time_steps(method, task.train_loader, method.phases()[-1], steps, warmup, torch_device,
                             channels_last)
        base_seconds = base_seconds or seconds
        print(f"{label:30s} {batch_size / seconds:10.1f} img/s  step {1000 * seconds:9.1f} ms  "
              f"x{seconds / base_seconds:.2f} vs Vanilla", flush=True)
    if train_root is not None:
        rate = measure_loader(train_root, batch_size, image_size, num_workers, loader_batches, torch_device)
        print(f"{'data loader':30s} {rate:10.1f} img/s  ({num_workers} workers, JPEG decode + augmentation)")


if __name__ == "__main__":
    fire.Fire(main)
