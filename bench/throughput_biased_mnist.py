"""Training throughput on Biased MNIST: Vanilla vs ReBias (and the original's double-forward ReBias step).

    python bench/throughput_biased_mnist.py --root ../shared/data [--device cpu] [--batch_size 256]
        [--steps 3] [--warmup 1] [--amp none|bf16] [--channels_last] [--peak_tflops 989] [--compare_original]
        [--stacked_seeds 3]

Prints, per variant, training images/s over ``steps`` steps after ``warmup`` steps, the share of time spent fetching
batches, the step cost relative to Vanilla and the achieved convolution FLOP/s (3x the forward FLOPs of f and g,
the usual forward+backward estimate; as a fraction of ``--peak_tflops`` when given). ``--stacked_seeds K`` adds
ReBias with K seeds trained at once (``--seeds``, seed-stacked networks); its img/s counts the images of all seeds.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import fire
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiment import resolve_device  # noqa: E402
from main_biased_mnist import DEFAULTS  # noqa: E402
from methods.rebias import ReBias  # noqa: E402
from methods.rebias_seeds import SeedStackedReBias  # noqa: E402
from models.mnist_models import SimpleConvNet  # noqa: E402
from tasks.biased_mnist import BiasedMNISTTask, SeedStackedBiasedMNISTTask  # noqa: E402
from trainer import autocast_factory  # noqa: E402
from utils.config import build_config  # noqa: E402
from utils.distributed import unwrap  # noqa: E402
from utils.seed import seed_everything  # noqa: E402


def conv_forward_flops(net: SimpleConvNet, height: int = 28, width: int = 28) -> int:
    """Multiply-adds x 2 of the convolutions and the classifier of one forward pass of one image."""
    flops = 0
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            flops += 2 * height * width * kh * kw * module.in_channels * module.out_channels
    return flops + 2 * net.fc.in_features * net.fc.out_features


def original_rebias_step(method: ReBias, batch) -> None:
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


def measure(method: ReBias, task: BiasedMNISTTask, steps: int, warmup: int, device: torch.device,
            original: bool, channels_last: bool) -> tuple[float, float]:
    """Return (seconds per step, data-loading share) over ``steps`` steps after ``warmup`` steps."""
    phase = method.phases()[-1]
    batches = iter(task.train_loader)
    method.train()
    data_seconds, total_seconds = 0.0, 0.0
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        batch = next(batches)
        if channels_last:
            batch = batch._replace(x=batch.x.contiguous(memory_format=torch.channels_last))
        fetched = time.perf_counter()
        if original:
            original_rebias_step(method, batch)
        else:
            method.training_step(batch, phase)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        end = time.perf_counter()
        if step >= warmup:
            data_seconds += fetched - start
            total_seconds += end - start
    return total_seconds / steps, data_seconds / total_seconds


def main(root: str = "../shared/data", device: str | None = None, batch_size: int = 256, steps: int = 3,
         warmup: int = 1, amp: str = "none", channels_last: bool = False, peak_tflops: float | None = None,
         compare_original: bool = True, train_correlation: float = 0.99, stacked_seeds: int = 0) -> None:
    torch_device = resolve_device(device)
    autocast = autocast_factory(torch_device, amp)
    print(f"device={torch_device} threads={torch.get_num_threads()} batch={batch_size} amp={amp} "
          f"channels_last={channels_last} steps={steps} warmup={warmup} torch={torch.__version__}")
    variants = [("Vanilla", {"f_lambda_outer": 0, "g_lambda_inner": 0}, False), ("ReBias", {}, False)]
    if compare_original:
        variants.append(("ReBias (original step: f forwarded twice)", {}, True))
    if stacked_seeds > 1:
        seeds = list(range(stacked_seeds))
        variants.append((f"ReBias, {stacked_seeds} seeds stacked (--seeds)",
                         {"seeds": seeds, "seed_run_names": [f"seed{seed}" for seed in seeds]}, False))
    base_seconds = None
    for name, overrides, original in variants:
        config = build_config({**DEFAULTS, "seed_run_names": None},
                              {"root": root, "batch_size": batch_size, "seed": 0, "device": device,
                               "train_correlation": train_correlation, "channels_last": channels_last, **overrides})
        seed_everything(0)
        stacked = config.seeds is not None
        task = (SeedStackedBiasedMNISTTask if stacked else BiasedMNISTTask)(config, torch_device)
        method = (SeedStackedReBias if stacked else ReBias)(config, task, torch_device, autocast)
        seconds, data_share = measure(method, task, steps, warmup, torch_device, original, channels_last)
        base_seconds = base_seconds or seconds
        replicas = len(config.seeds) if stacked else 1
        f_net, g_net = (unwrap(network).unstack(0) if stacked else unwrap(network)
                        for network in (method.f_net, method.g_nets[0]))
        images = replicas * batch_size
        flops = 3 * images * (conv_forward_flops(f_net) + conv_forward_flops(g_net))
        if original:
            flops += batch_size * conv_forward_flops(method.f_net)
        achieved = flops / seconds / 1e12
        line = (f"{name:45s} {images / seconds:10.1f} img/s  step {seconds * 1000:9.1f} ms  "
                f"x{seconds / base_seconds:.2f} vs Vanilla  data {100 * data_share:.2f}%  {achieved:.3f} TFLOP/s")
        if peak_tflops:
            line += f" ({100 * achieved / peak_tflops:.1f}% of {peak_tflops} peak)"
        print(line, flush=True)


if __name__ == "__main__":
    fire.Fire(main)
