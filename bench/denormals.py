"""CPU step time late in training, with and without flushing denormal floats to zero (``--flush_denormal``).

    python bench/denormals.py RUN_DIR [RUN_DIR ...] [--steps 30] [--threads 1]

Each RUN_DIR is a train_disent.py or main_matrix.py run with its ``config.json`` and ``last.pth`` (checkpoints are
not committed: run it where the runs trained). The bench rebuilds the run's task and method, loads the checkpoint
(late in training, where weights and activations have decayed into the denormal range) and times ``--steps``
training steps in CPU time three times: denormals kept, flushed, kept again. Every epoch of the comparison matrix
and of the Colored MNIST tables before the flag existed paid the first figure.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from munch import Munch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from methods import METHODS  # noqa: E402
from tasks import TASKS  # noqa: E402
from train_disent import METHOD_FLAGS  # noqa: E402
from utils.config import run_cli  # noqa: E402
from utils.io import CheckpointError, load_checkpoint  # noqa: E402
from utils.matrix import registry_name  # noqa: E402


def task_and_method(config: Munch) -> tuple[str, str]:
    """The TASKS and METHODS names a run's config was trained with."""
    if config.get("benchmark"):
        return "matrix", registry_name(config.method)
    return "disent", next(name for flag, name in METHOD_FLAGS.items() if config.get(flag))


def method_from_run(run_dir: str, **overrides: Any) -> tuple[Any, Any]:
    """The task and a freshly initialised method of a run (its ``config.json``, with ``overrides``), on the CPU."""
    config = Munch(json.loads((Path(run_dir) / "config.json").read_text()))
    config.update(device="cpu", **overrides)
    task_name, method_name = task_and_method(config)
    task = TASKS[task_name](config, torch.device("cpu"))
    return task, METHODS[method_name](config, task, torch.device("cpu"), contextlib.nullcontext)


def time_steps(run_dir: str, steps: int) -> list[tuple[bool, float]]:
    """CPU milliseconds per training step from the run's checkpoint: (flush, ms) for kept / flushed / kept."""
    checkpoint = load_checkpoint(Path(run_dir) / "last.pth")
    task, method = method_from_run(run_dir)
    method.load_state_dict(checkpoint["method"])
    method.train()
    batches = list(itertools.islice(iter(task.train_loader), steps))
    phase = method.phases()[-1]
    timings = []
    for flush in (False, True, False):
        torch.set_flush_denormal(flush)
        start = time.process_time()
        for batch in batches:
            method.training_step(batch, phase)
        timings.append((flush, 1e3 * (time.process_time() - start) / len(batches)))
    torch.set_flush_denormal(False)
    return timings


def main(*run_dirs: str, steps: int = 30, threads: int = 1) -> None:
    torch.set_num_threads(threads)
    print(f"{'run':58s} {'kept ms':>8s} {'flushed ms':>10s} {'kept again ms':>13s} {'x':>5s}")
    for run_dir in run_dirs:
        (_, kept), (_, flushed), (_, again) = time_steps(run_dir, steps)
        ratio = min(kept, again) / flushed
        print(f"{run_dir.removeprefix('results/'):58s} {kept:8.2f} {flushed:10.2f} {again:13.2f} {ratio:5.2f}")


if __name__ == "__main__":
    run_cli(main, user_errors=(CheckpointError,))
