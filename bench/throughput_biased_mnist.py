"""Training throughput on Biased MNIST: Vanilla vs ReBias (and the original's double-forward ReBias step), and how
close a step comes to the device's peak.

    python bench/throughput_biased_mnist.py --root ../shared/data [--device cpu] [--batch_size 256]
        [--steps 3] [--warmup 1] [--amp none|bf16] [--channels_last] [--compile] [--peak_tflops 790]
        [--compare_original] [--stacked_seeds 3,12] [--profile auto|True|False] [--json_out rows.json]

Prints, per variant, training images/s over ``steps`` steps after ``warmup`` steps, the step time, the step cost
relative to Vanilla with as many seeds, the share of time spent fetching batches and the achieved FLOP/s: the FLOPs
of one training step (convolutions and matrix products of f, g and the criteria, forward and backward) counted by
``torch.utils.flop_counter.FlopCounterMode``, over the step time, and their fraction of the device's dense bf16 peak
(:data:`MEASURED_BF16_TFLOPS`, else :data:`DENSE_BF16_PEAK_TFLOPS`, looked up by device name; ``--peak_tflops``
overrides it; n/a when unknown, as on a CPU). ``--stacked_seeds 3,12`` adds Vanilla and ReBias with 3 and with 12
seeds trained at once (``--seeds``, seed-stacked networks); their img/s counts the images of all seeds.
``--profile`` says where the time goes (``auto``: for variants below ``--target_fraction`` of a known peak): the
top kernels of a step from ``torch.profiler`` (top operators on a CPU), the share of the step the GPU is busy and
the host<->device copies per step. ``--json_out`` writes every variant's figures as a JSON list.
"""
from __future__ import annotations

import json
import platform
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import fire
import torch
import torch.nn.functional as F
from munch import Munch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile as torch_profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import synchronize  # noqa: E402
from datasets.tensor_loader import Batch  # noqa: E402
from experiment import resolve_device  # noqa: E402
from main_biased_mnist import DEFAULTS  # noqa: E402
from methods.base import Phase  # noqa: E402
from methods.rebias import ReBias  # noqa: E402
from methods.rebias_seeds import SeedStackedReBias  # noqa: E402
from tasks.biased_mnist import BiasedMNISTTask, SeedStackedBiasedMNISTTask  # noqa: E402
from trainer import autocast_factory  # noqa: E402
from utils.config import build_config, parse_seeds  # noqa: E402
from utils.distributed import memory_format_for  # noqa: E402
from utils.seed import seed_everything  # noqa: E402

TARGET_FRACTION = 0.40
"""Speed target: a Biased MNIST training step at this fraction of the device's dense bf16 peak FLOP/s."""

DENSE_BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H200 NVL", 835.0),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("H800", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
)
"""Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendor's data sheets, keyed by words of the name
``torch.cuda.get_device_name`` reports ("NVIDIA H100 80GB HBM3" is an H100 SXM); the first key whose words all occur
in the name, in order and as whole words, applies."""

MEASURED_BF16_TFLOPS: dict[str, float] = {"NVIDIA H200": 790.0}
"""Dense bf16 rates measured on the machines this project runs on, by exact device name, used before the datasheet
figure: on the H200 node an 8192^3 bf16 GEMM on random data ran at 769-798 TFLOP/s, against the datasheet's 989."""

METHOD_OVERRIDES: dict[str, dict[str, Any]] = {"Vanilla": {"f_lambda_outer": 0, "g_lambda_inner": 0}, "ReBias": {}}
MEMCPY_HOST_DEVICE = re.compile(r"Memcpy (HtoD|DtoH)")
TOP_KERNELS = 8


@dataclass(frozen=True)
class Variant:
    """One measured configuration: a method, how many seeds are stacked, and whether it is the original's step."""

    name: str
    method: str
    seeds: int = 1
    original: bool = False


def variants(compare_original: bool, stacked_seeds: list[int]) -> list[Variant]:
    """Vanilla and ReBias unstacked (plus the original's ReBias step), then per stack size K > 1 both stacked."""
    chosen = [Variant("Vanilla", "Vanilla"), Variant("ReBias", "ReBias")]
    if compare_original:
        chosen.append(Variant("ReBias (original step: f forwarded twice)", "ReBias", original=True))
    for seeds in (k for k in stacked_seeds if k > 1):
        chosen += [Variant(f"{method}, {seeds} seeds stacked (--seeds)", method, seeds)
                   for method in ("Vanilla", "ReBias")]
    return chosen


def device_name(device: torch.device) -> str:
    """The accelerator's marketing name (``torch.cuda.get_device_name``), or the CPU's architecture."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()})"


def peak_tflops_for(name: str) -> float | None:
    """Dense bf16 peak TFLOP/s of the device called ``name``: its measured rate (:data:`MEASURED_BF16_TFLOPS`), else
    its datasheet's (:data:`DENSE_BF16_PEAK_TFLOPS`), None if unknown."""
    if name in MEASURED_BF16_TFLOPS:
        return MEASURED_BF16_TFLOPS[name]
    words = re.split(r"[\s_-]+", name.upper())
    for key, peak in DENSE_BF16_PEAK_TFLOPS:
        key_words = key.upper().split()
        if any(words[i:i + len(key_words)] == key_words for i in range(len(words))):
            return peak
    return None


def original_rebias_step(method: ReBias, batch: Batch) -> None:
    """The original implementation's step: f is forwarded again for every g step and once more for the f step."""
    x, y = batch.x, batch.target
    with method.autocast():
        f_features = method.f_net(x)[1]
        g_logits, g_features = method.g_nets[0](x)
        g_loss = F.cross_entropy(g_logits, y) + method.inner(g_features, f_features)
    method.g_optimizer.zero_grad()
    g_loss.backward()
    method.g_optimizer.step()
    with method.autocast():
        f_logits, f_features = method.f_net(x)
        g_features = method.g_nets[0](x)[1]
        f_loss = F.cross_entropy(f_logits, y) + method.outer(f_features, g_features)
    method.f_optimizer.zero_grad()
    f_loss.backward()
    method.f_optimizer.step()


def build_method(config: Munch, task: BiasedMNISTTask | SeedStackedBiasedMNISTTask, device: torch.device,
                 autocast: Callable[[], AbstractContextManager]) -> ReBias:
    """The (seed-stacked when ``config.seeds``) f/g trainer of ``config``."""
    seed_everything(0)
    return (SeedStackedReBias if config.seeds else ReBias)(config, task, device, autocast)


@dataclass(frozen=True)
class Setup:
    """What one invocation measures every variant with."""

    root: str
    device: torch.device
    device_name: str
    batch_size: int
    train_correlation: float
    amp: str
    channels_last: bool
    compile: bool
    f_kernel_size: int
    peak_tflops: float | None


def variant_config(variant: Variant, setup: Setup) -> Munch:
    """The main_biased_mnist.py configuration of ``variant`` (seeds 0..K-1 when stacked)."""
    overrides = dict(METHOD_OVERRIDES[variant.method])
    if variant.seeds > 1:
        seeds = list(range(variant.seeds))
        overrides.update(seeds=seeds, seed_run_names=[f"seed{seed}" for seed in seeds])
    return build_config({**DEFAULTS, "seed_run_names": None},
                        {"root": setup.root, "batch_size": setup.batch_size, "seed": 0, "device": str(setup.device),
                         "train_correlation": setup.train_correlation, "channels_last": setup.channels_last,
                         "compile": setup.compile, "f_kernel_size": setup.f_kernel_size, **overrides})


def build_task(config: Munch, device: torch.device) -> BiasedMNISTTask | SeedStackedBiasedMNISTTask:
    """Biased MNIST on ``device`` (one colouring per seed when ``config.seeds``)."""
    return (SeedStackedBiasedMNISTTask if config.seeds else BiasedMNISTTask)(config, device)


def run_step(method: ReBias, batch: Batch, phase: Phase, original: bool) -> None:
    if original:
        original_rebias_step(method, batch)
    else:
        method.training_step(batch, phase)


def timed_steps(method: ReBias, batches: Iterator[Batch], steps: int, device: torch.device, original: bool,
                channels_last: bool) -> tuple[float, float]:
    """(seconds per step, data-loading share) over the next ``steps`` batches of ``batches``."""
    phase = method.phases()[-1]
    data_seconds, total_seconds = 0.0, 0.0
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        batch = next(batches)
        if channels_last:
            batch = batch._replace(x=batch.x.contiguous(memory_format=memory_format_for(batch.x.dim())))
        fetched = time.perf_counter()
        run_step(method, batch, phase, original)
        synchronize(device)
        data_seconds += fetched - start
        total_seconds += time.perf_counter() - start
    return total_seconds / steps, data_seconds / total_seconds


def step_flops(variant: Variant, setup: Setup) -> int:
    """FLOPs of one training step of ``variant``, counted by FlopCounterMode on an eager fp32 copy of its networks
    (the count depends on shapes only, and compiled code would hide its operations from the counter). A seed-stacked
    step does its K seeds' steps at once, so it counts K times one seed's step: FlopCounterMode ignores the groups of
    a grouped convolution's weight gradient and would count it K times over."""
    config = variant_config(replace(variant, seeds=1), replace(setup, channels_last=False, compile=False))
    task = build_task(config, setup.device)
    method = build_method(config, task, setup.device, nullcontext)
    method.train()
    with FlopCounterMode(display=False) as counter:
        run_step(method, next(iter(task.train_loader)), method.phases()[-1], variant.original)
    return variant.seeds * counter.get_total_flops()


def host_device_copies(events: list[Any]) -> int:
    """Host-to-device and device-to-host memory copies among profiler ``events``."""
    return sum(1 for event in events if MEMCPY_HOST_DEVICE.match(event.name))


def where_time_goes(prof: torch.profiler.profile, device: torch.device, steps: int,
                    wall_seconds: float) -> dict[str, Any]:
    """Per step: the top kernels (CUDA; top operators by self time on a CPU) with their ms and share of the step,
    the share of the step the GPU is busy, and the host<->device copies."""
    events = list(prof.events())
    step_us = 1e6 * wall_seconds / steps
    totals: dict[str, float] = defaultdict(float)
    if device.type == "cuda":
        device_events = [event for event in events if event.device_type == DeviceType.CUDA]
        for event in device_events:
            totals[event.name] += event.device_time_total / steps
        busy = sum(totals.values()) / step_us
    else:
        for average in prof.key_averages():
            totals[average.key] += average.self_cpu_time_total / steps
        busy = None
    top = sorted(totals.items(), key=lambda item: -item[1])[:TOP_KERNELS]
    return {"busy_fraction": busy, "host_device_copies_per_step": host_device_copies(events) / steps,
            "top": [{"name": name, "ms_per_step": us / 1000, "share_of_step": us / step_us} for name, us in top]}


def profile_time(method: ReBias, batches: Iterator[Batch], steps: int, device: torch.device, original: bool,
                 channels_last: bool) -> dict[str, Any]:
    """:func:`where_time_goes` over the next ``steps`` training steps."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        seconds, _ = timed_steps(method, batches, steps, device, original, channels_last)
    return where_time_goes(prof, device, steps, seconds * steps)


def should_profile(profile: bool | str, fraction: float | None, target_fraction: float) -> bool:
    """``--profile``: True/False, or ``auto``: when the peak is known and the step falls short of the target."""
    if profile == "auto":
        return fraction is not None and fraction < target_fraction
    return bool(profile)


def describe_profile(summary: dict[str, Any]) -> str:
    """The profile as indented lines under a variant's figures."""
    busy = summary["busy_fraction"]
    lines = [f"    where the time goes: GPU busy {100 * busy:.0f}% of the step" if busy is not None else
             "    where the time goes (top operators by self CPU time):",
             f"    host<->device copies per step: {summary['host_device_copies_per_step']:g}"]
    lines += [f"    {100 * row['share_of_step']:5.1f}%  {row['ms_per_step']:8.3f} ms  {row['name'][:100]}"
              for row in summary["top"]]
    return "\n".join(lines)


def measure(variant: Variant, setup: Setup, steps: int, warmup: int) -> tuple[dict[str, Any], ReBias,
                                                                        Iterator[Batch]]:
    """The variant's figures over ``steps`` steps after ``warmup``; also its method and its remaining batches."""
    config = variant_config(variant, setup)
    task = build_task(config, setup.device)
    method = build_method(config, task, setup.device, autocast_factory(setup.device, setup.amp))
    method.train()
    batches = iter(task.train_loader)
    flops = step_flops(variant, setup)
    if warmup:
        timed_steps(method, batches, warmup, setup.device, variant.original, setup.channels_last)
    seconds, data_share = timed_steps(method, batches, steps, setup.device, variant.original, setup.channels_last)
    achieved = flops / seconds / 1e12
    row = {"variant": variant.name, "method": variant.method, "stacked_seeds": variant.seeds,
           "original_step": variant.original, "device": setup.device_name, "amp": setup.amp,
           "channels_last": setup.channels_last, "compile": setup.compile, "batch_size": setup.batch_size,
           "images_per_second": variant.seeds * setup.batch_size / seconds, "step_ms": seconds * 1000,
           "data_share": data_share, "flops_per_step": flops, "tflops": achieved, "peak_tflops": setup.peak_tflops,
           "peak_fraction": achieved / setup.peak_tflops if setup.peak_tflops else None, "profile": None}
    return row, method, batches


def describe(row: dict[str, Any], vanilla_step_ms: float) -> str:
    """One line of figures for a measured variant."""
    fraction = row["peak_fraction"]
    peak = f"({100 * fraction:.1f}% of {row['peak_tflops']:g} peak)" if fraction is not None else "(peak n/a)"
    return (f"{row['variant']:45s} {row['images_per_second']:10.1f} img/s  step {row['step_ms']:9.2f} ms  "
            f"x{row['step_ms'] / vanilla_step_ms:.2f} vs Vanilla  data {100 * row['data_share']:.2f}%  "
            f"{row['tflops']:.3f} TFLOP/s {peak}")


def main(root: str = "../shared/data", device: str | None = None, batch_size: int = 256, steps: int = 3,
         warmup: int = 1, amp: str = "none", channels_last: bool = False, compile: bool = False,
         peak_tflops: float | None = None, compare_original: bool = True, train_correlation: float = 0.99,
         stacked_seeds: Any = 0, profile: bool | str = "auto", profile_steps: int = 3,
         target_fraction: float = TARGET_FRACTION, f_kernel_size: int = 7, json_out: str | None = None) -> None:
    """Measure every variant and print one line each (and its profile when asked); ``json_out``: also write the
    figures as JSON rows."""
    torch_device = resolve_device(device)
    name = device_name(torch_device)
    setup = Setup(root, torch_device, name, batch_size, train_correlation, amp, channels_last, compile,
                  f_kernel_size, peak_tflops or peak_tflops_for(name))
    print(f"device={torch_device} ({name}) peak={setup.peak_tflops or 'n/a'} TFLOP/s "
          f"threads={torch.get_num_threads()} batch={batch_size} amp={amp} channels_last={channels_last} "
          f"compile={compile} steps={steps} warmup={warmup} torch={torch.__version__}")
    rows: list[dict[str, Any]] = []
    vanilla_step_ms: dict[int, float] = {}
    for variant in variants(compare_original, parse_seeds(stacked_seeds) or []):
        row, method, batches = measure(variant, setup, steps, warmup)
        print(describe(row, vanilla_step_ms.setdefault(variant.seeds, row["step_ms"])), flush=True)
        if should_profile(profile, row["peak_fraction"], target_fraction):
            row["profile"] = profile_time(method, batches, profile_steps, torch_device, variant.original,
                                          channels_last)
            print(describe_profile(row["profile"]), flush=True)
        rows.append(row)
    print(target_verdict(rows, setup.peak_tflops, target_fraction))
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(rows, indent=1))


def target_verdict(rows: list[dict[str, Any]], peak: float | None, target_fraction: float) -> str:
    """Whether the best variant reaches ``target_fraction`` of the dense bf16 peak."""
    if not peak:
        return f"target (>= {100 * target_fraction:.0f}% of dense bf16 peak): n/a, no peak known for this device"
    best = max(rows, key=lambda row: row["peak_fraction"])
    verdict = "met" if best["peak_fraction"] >= target_fraction else "NOT met"
    return (f"target (>= {100 * target_fraction:.0f}% of dense bf16 peak): {verdict}; best "
            f"{100 * best['peak_fraction']:.1f}% ({best['variant']})")


if __name__ == "__main__":
    fire.Fire(main)
