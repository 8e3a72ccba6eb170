"""Colored MNIST runs against their compute floor: for Vanilla, LfF and DisEnt (DisEnt's protocol) and LfF's own
protocol, the time a full run takes on this device beside the time of its matrix multiplications alone.

    python bench/cmnist_floor.py --data_dir data/cmnist_hues_lff [--percent 1pct] [--steps 300] [--device cpu]
        [--threads N] [--results_dir results/disent_cmnist]

Floor: every training step runs, per Linear layer of every network, the forward GEMM (B x in) @ (in x out), the
weight-gradient GEMM (out x B) @ (B x in) and, except for the first layer (inputs need no gradient), the
input-gradient GEMM (B x out) @ (out x in). Each of these shapes is timed alone with ``torch.mm`` on this device in
the same run; their sum is the floor of a step, and ``steps x floor`` is the run's floor. The run's time is measured
with the real task (data on the device), the real Method and the real evaluation: ``steps x step time + evaluations
x evaluation time``, split into data fetch, the training step and evaluation; the share of a step spent in the
Adam update (timed alone on the last step's gradients) is printed too, and ``b4/floor``: a training step on the
first 4 samples of a batch, where the GEMMs are negligible, over the floor (the share of the floor that the per-step
cost independent of the batch size takes: the 1.5 x target leaves 0.5 x for it, the data and everything else).
With ``--results_dir`` the wall time recorded in committed results.json files is printed beside it. The target is a
run within 1.5 x its floor.

On a CPU every time is the process' CPU time (``time.process_time``), so other jobs sharing the cores do not
inflate it; run with ``--threads 1`` to make CPU time equal compute time. On a GPU it is wall time.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import fire
import torch
from munch import Munch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import synchronize  # noqa: E402
from datasets.disent_data import cmnist_variant, read_manifest  # noqa: E402
from datasets.tensor_loader import Batch  # noqa: E402
from evaluator import evaluate  # noqa: E402
from experiment import resolve_device  # noqa: E402
from methods import METHODS  # noqa: E402
from reports.cmnist_tables import PROTOCOL_STEPS, load_runs  # noqa: E402
from tasks import TASKS  # noqa: E402
from train_disent import DEFAULTS, PRESETS  # noqa: E402

CASES = {
    "Vanilla (DisEnt)": ("vanilla_disent", {"lr": 0.01}),
    "LfF (DisEnt)": ("lff", {"lr": 0.01}),
    "DisEnt": ("disent", {"lr": 0.01, "curr_step": 0, "lambda_dis_align": 10.0, "lambda_swap_align": 10.0,
                          "use_lr_decay": True, "lr_decay_step": 10000, "lr_gamma": 0.5}),
    "Vanilla (LfF paper)": ("vanilla_disent", PRESETS["lff_paper"]),
    "LfF (LfF paper)": ("lff", PRESETS["lff_paper"]),
}


CLOCK = time.process_time
SMALL_BATCH = 4
"""The batch size at which a step's GEMMs are negligible: its step time is the per-step cost that does not shrink
with the batch (Python and dispatch, autograd bookkeeping, Adam's pass over every parameter, losses, EMAs)."""


def time_call(function, repeats: int) -> float:
    """Median seconds of ``function()`` over ``repeats`` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = CLOCK()
        function()
        times.append(CLOCK() - start)
    return statistics.median(times)


def synchronised(function: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``function`` followed by :func:`bench.common.synchronize`, for timing."""
    def call() -> None:
        function()
        synchronize(device)
    return call


def gemm_floor(networks: list[nn.Module], batch: int, device: torch.device, repeats: int = 20) -> tuple[float, float]:
    """(seconds, FLOPs) of one training step's GEMMs for ``networks``' Linear layers at batch size ``batch``."""
    seconds, flops = 0.0, 0.0
    for network in networks:
        linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
        for index, layer in enumerate(linears):
            out_features, in_features = layer.weight.shape
            x = torch.rand(batch, in_features, device=device)
            w = torch.rand(in_features, out_features, device=device)
            gy = torch.rand(batch, out_features, device=device)
            shapes = [(x, w), (gy.t().contiguous(), x)]
            if index > 0:
                shapes.append((gy, w.t().contiguous()))
            for a, b in shapes:
                seconds += time_call(lambda a=a, b=b: torch.mm(a, b), repeats)
                flops += 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    return seconds, flops


def measure(name: str, data_dir: str, percent: str, steps: int, device: torch.device) -> dict[str, float]:
    method_name, overrides = CASES[name]
    config = Munch({**DEFAULTS, **overrides, "data_dir": data_dir, "percent": percent, "seed": 0,
                    "batch_size": overrides.get("batch_size", 256), "select_on": overrides.get("select_on", "valid")})
    config.palette, config.render = _variant(data_dir, percent, config)
    task = TASKS["disent"](config, device)
    method = METHODS[method_name](config, task, device)
    phase = method.phases()[0]
    loader = task.train_loader
    loader.set_epoch(0)
    batches = iter(loader)
    fetch = step = 0.0
    method.train()
    for index in range(steps + 5):
        start = CLOCK()
        try:
            batch = next(batches)
        except StopIteration:
            loader.set_epoch(index)
            batches = iter(loader)
            batch = next(batches)
        fetched = CLOCK()
        method.training_step(batch, phase)
        synchronize(device)
        done = CLOCK()
        if index >= 5:
            fetch += fetched - start
            step += done - fetched
    adam = time_call(synchronised(method.optimizer.step, device), 20)
    small = Batch(*(field[:SMALL_BATCH] for field in batch))
    fixed = time_call(synchronised(lambda: method.training_step(small, phase), device), 20)
    evaluation = time_call(lambda: evaluate(method.predictors(), task.eval_loaders, task.num_classes,
                                            task.num_biases), 2)
    floor_seconds, flops = gemm_floor(list(method.networks.values()), config.batch_size, device)
    run_steps = config.num_steps
    evaluations = run_steps // config.valid_freq
    return {"fetch": fetch / steps, "step": step / steps, "adam": adam, "fixed": fixed, "evaluation": evaluation,
            "floor": floor_seconds,
            "flops": flops, "run_steps": run_steps, "evaluations": evaluations,
            "run_seconds": run_steps * (fetch + step) / steps + evaluations * evaluation,
            "floor_run_seconds": run_steps * floor_seconds}


def _variant(data_dir: str, percent: str, config: Munch) -> tuple[str, str]:
    """The palette and renderer the data's manifest records (the flags' defaults for data without one)."""
    manifest = read_manifest(data_dir, "cmnist", percent)
    if manifest is None:
        return config.palette, config.render
    variant = cmnist_variant(manifest)
    return variant["palette"], variant["render"]


def recorded_wall_times(results_dir: str) -> dict[str, float]:
    """Median recorded wall seconds of paper-length runs per (protocol, method)."""
    times: dict[str, list[float]] = {}
    for run in load_runs(results_dir):
        if run.paper_length:
            wall = json.loads(run.path.read_text())["wall_seconds"]
            times.setdefault(f"{run.method} ({run.protocol}, {PROTOCOL_STEPS[run.protocol]} steps)", []).append(wall)
    return {key: statistics.median(values) for key, values in sorted(times.items())}


def main(data_dir: str, percent: str = "1pct", steps: int = 300, device: str | None = None,
         threads: int | None = None, cases: str = ",".join(CASES), results_dir: str | None = None) -> None:
    global CLOCK
    if threads is not None:
        torch.set_num_threads(threads)
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":
        CLOCK = time.perf_counter
    print(f"device {torch_device}, {torch.get_num_threads()} threads, {steps} timed steps per case, "
          f"{'CPU' if CLOCK is time.process_time else 'wall'} time")
    print(f"{'case':22s} {'step ms':>8s} {'data ms':>8s} {'eval s':>7s} {'floor ms':>9s} {'GFLOP/s':>8s} "
          f"{'run min':>8s} {'floor min':>9s} {'x floor':>8s} {f'b{SMALL_BATCH}/floor':>8s}  where the time goes")
    names = cases.split(",") if isinstance(cases, str) else list(cases)
    for name in names:
        figures = measure(name, data_dir, percent, steps, torch_device)
        ratio = figures["run_seconds"] / figures["floor_run_seconds"]
        total_step = figures["step"] + figures["fetch"]
        share = {"GEMMs": figures["floor"] / total_step, "data": figures["fetch"] / total_step,
                 "Adam": figures["adam"] / total_step,
                 "other step work": (figures["step"] - figures["floor"] - figures["adam"]) / total_step}
        eval_share = figures["evaluations"] * figures["evaluation"] / figures["run_seconds"]
        print(f"{name:22s} {1e3 * figures['step']:8.2f} {1e3 * figures['fetch']:8.2f} {figures['evaluation']:7.2f} "
              f"{1e3 * figures['floor']:9.2f} {figures['flops'] / figures['floor'] / 1e9:8.1f} "
              f"{figures['run_seconds'] / 60:8.1f} {figures['floor_run_seconds'] / 60:9.1f} {ratio:8.2f} "
              f"{figures['fixed'] / figures['floor']:8.2f}  "
              + ", ".join(f"{key} {100 * value:.0f}%" for key, value in share.items())
              + f" of a step; evaluation {100 * eval_share:.0f}% of the run")
    if results_dir is not None:
        for key, seconds in recorded_wall_times(results_dir).items():
            print(f"recorded wall time, {key}: {seconds / 60:.1f} min (median over committed runs)")


if __name__ == "__main__":
    fire.Fire(main)
