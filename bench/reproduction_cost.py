"""What a full reproduction of each paper table costs on this device, extrapolated from measured steps.

    python bench/reproduction_cost.py [--tasks biased_mnist] [--root ../shared/data] [--device cpu]
        [--steps 2] [--warmup 1] [--amp none|bf16] [--channels_last]

For each task: the measured training step time of every method of the table, the evaluation throughput, and the
seconds the table's protocol needs (runs x steps x step time + evaluations), printed per method and in total.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import fire
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput_biased_mnist import measure  # noqa: E402
from evaluator import evaluate  # noqa: E402
from experiment import resolve_device  # noqa: E402
from main_biased_mnist import DEFAULTS as MNIST_DEFAULTS  # noqa: E402
from methods.rebias import ReBias  # noqa: E402
from tasks.biased_mnist import BiasedMNISTTask  # noqa: E402
from trainer import autocast_factory  # noqa: E402
from utils.config import build_config  # noqa: E402
from utils.seed import seed_everything  # noqa: E402

TABLE1_METHODS = {
    "Vanilla": {"f_lambda_outer": 0, "g_lambda_inner": 0},
    "LearnedMixin": {"outer_criterion": "LearnedMixin", "g_lambda_inner": 0, "n_g_update": 0},
    "RUBi": {"outer_criterion": "RUBi", "g_lambda_inner": 0},
    "ReBias": {},
}
TABLE1_RUNS_PER_METHOD = 4 * 3
TABLE1_EPOCHS, TABLE1_G_PRETRAIN_EPOCHS = 80, 5


def _eval_seconds_per_image(method: ReBias, task: BiasedMNISTTask, device: torch.device, autocast) -> float:
    loader = task.eval_loaders["unbiased"]
    start = time.perf_counter()
    cells = evaluate(method.predictors(), {"unbiased": loader}, 10, 10, limit_batches=2, autocast=autocast())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / int(cells["unbiased"]["f"].total.sum())


def biased_mnist_cost(root: str, device: torch.device, steps: int, warmup: int, amp: str,
                      channels_last: bool) -> float:
    """ReBias Table 1: 4 methods x 4 rho x 3 seeds x 80 epochs of 235 batches of 256, 3 test colourings a epoch."""
    autocast = autocast_factory(device, amp)
    total = 0.0
    for name, overrides in TABLE1_METHODS.items():
        config = build_config(MNIST_DEFAULTS, {"root": root, "seed": 0, "device": str(device),
                                               "channels_last": channels_last, **overrides})
        seed_everything(0)
        task = BiasedMNISTTask(config, device)
        method = ReBias(config, task, device, autocast)
        step_seconds, _ = measure(method, task, steps, warmup, device, original=False, channels_last=channels_last)
        steps_per_epoch = len(task.train_loader)
        run_seconds = TABLE1_EPOCHS * steps_per_epoch * step_seconds
        if name == "LearnedMixin":
            g_phase = method.phases()[0]
            batches = iter(task.train_loader)
            start = time.perf_counter()
            for _ in range(steps):
                method.training_step(next(batches), g_phase)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            run_seconds += TABLE1_G_PRETRAIN_EPOCHS * steps_per_epoch * (time.perf_counter() - start) / steps
        eval_images = sum(loader.dataset_size for loader in task.eval_loaders.values())
        run_seconds += TABLE1_EPOCHS * eval_images * _eval_seconds_per_image(method, task, device, autocast)
        method_seconds = TABLE1_RUNS_PER_METHOD * run_seconds
        total += method_seconds
        print(f"  {name:13s} step {1000 * step_seconds:8.1f} ms ({config.batch_size / step_seconds:8.1f} img/s)  "
              f"one run {run_seconds / 3600:7.2f} h  x{TABLE1_RUNS_PER_METHOD} runs {method_seconds / 3600:8.2f} h",
              flush=True)
    return total


COST_ESTIMATORS = {"biased_mnist": biased_mnist_cost}


def main(tasks: str | tuple = "biased_mnist", root: str = "../shared/data", device: str | None = None,
         steps: int = 2, warmup: int = 1, amp: str = "none", channels_last: bool = False) -> None:
    torch_device = resolve_device(device)
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    print(f"device={torch_device} threads={torch.get_num_threads()} amp={amp} channels_last={channels_last} "
          f"torch={torch.__version__}")
    for name in names:
        print(f"{name}:")
        seconds = COST_ESTIMATORS[name](root, torch_device, steps, warmup, amp, channels_last)
        print(f"  => full table: {seconds:.0f} s = {seconds / 3600:.1f} device-hours on {torch_device}")


if __name__ == "__main__":
    fire.Fire(main)
