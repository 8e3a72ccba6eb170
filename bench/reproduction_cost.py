"""What a full reproduction of each paper table costs on this device, extrapolated from measured steps.

    python bench/reproduction_cost.py [--tasks biased_mnist,disent,imagenet,action] [--root ../shared/data]
        [--device cpu] [--steps 2] [--warmup 1] [--amp none|bf16] [--channels_last] [--max_batch N]
        [--datasets cmnist,cifar10c,bffhq]

Tasks (the protocols of ../shared/reference/{rebias,disent}_spec.md and of the sweep scripts in scripts/):

  biased_mnist  ReBias Table 1: Vanilla/Biased, LearnedMixin, RUBi, ReBias x 4 rho x 3 seeds, 80 epochs of 235
                batches of 256 (real Biased MNIST from --root; LearnedMixin first pre-trains g for 5 epochs)
  disent        DisEnt Table 1: Vanilla, LfF, DisEnt x 5 seeds x the ratios of each dataset (--datasets: Colored
                MNIST and Corrupted CIFAR-10 at 4 ratios, BFFHQ at 0.5 %), 50,000 steps of 256 / 256 / 64 images
  imagenet      ReBias Table 2: Vanilla/Biased, LearnedMixin, RUBi, ReBias x 3 seeds, 120 epochs of 9-class
                ImageNet, batch 128 at 224 px (LearnedMixin: 30 epochs of g pre-training first)
  action        ReBias Table 3: the same four methods x 3 seeds, 120 epochs of Kinetics-10, batch 128 clips of
                8 frames at 224 px; Mimetics-10 evaluated with 10 clips of 256 px per video

Each method is the project's own Method class (methods/) on the task's own networks; every task but biased_mnist
runs on synthetic device-resident batches of the protocol's shapes, so no dataset is needed and data loading is not
counted. Per method the script prints the mean training step at the paper's batch size, the training throughput,
the seconds of one run (steps x step time, plus ReBias' per-epoch kernel-radius updates on ImageNet, plus the
evaluations the Trainer runs: after every ``val_epoch_step`` epochs, the last epoch of each phase and once at the
end, on the evaluation sets' full sizes) and the runs of the table; then the table's total.

``--max_batch N`` (for CPUs): measure at batch N when the paper's batch is larger and scale the step time by the
ratio of the batch sizes (linear in the batch, as on a saturated CPU; optimistic for small batches on a GPU). Step
and evaluation counts always follow the paper's protocol.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from munch import Munch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (SyntheticActionTask, SyntheticDisEntTask, SyntheticImageNetTask, sigma_batches,  # noqa: E402
                          time_evaluation, time_sigma_update, time_steps)
from datasets.colour_mnist import EVAL_CORRELATIONS  # noqa: E402
from experiment import REBIAS_UNTYPED_FLAGS, resolve_device  # noqa: E402
from main_action import DEFAULTS as ACTION_DEFAULTS  # noqa: E402
from main_biased_mnist import DEFAULTS as MNIST_DEFAULTS  # noqa: E402
from main_imagenet import DEFAULTS as IMAGENET_DEFAULTS  # noqa: E402
from methods import METHODS, Method, Phase  # noqa: E402
from methods.disent import DisEnt  # noqa: E402
from methods.rebias import ReBias  # noqa: E402
from tasks.base import Task  # noqa: E402
from tasks.biased_mnist import BiasedMNISTTask  # noqa: E402
from tasks.disent import BATCH_SIZES as DISENT_BATCH_SIZES, NUM_CLASSES as DISENT_NUM_CLASSES  # noqa: E402
from tasks.imagenet import MIN_BATCH_FOR_HSIC  # noqa: E402
from train_disent import DEFAULTS as DISENT_DEFAULTS, PERCENTS  # noqa: E402
from trainer import autocast_factory  # noqa: E402
from utils.config import build_config, require, run_cli  # noqa: E402
from utils.seed import seed_everything  # noqa: E402

# ReBias tables: the methods' flags of scripts/{biased_mnist_table1,imagenet_table2,action_table3}.sh (where those
# differ, the flag does not change a step: the task's default radius is 1, or g is frozen). A Vanilla run also gives
# the "Biased" row (its g).
REBIAS_METHODS: dict[str, dict[str, Any]] = {
    "Vanilla": {"f_lambda_outer": 0, "g_lambda_inner": 0, "rbf_sigma_x": 1, "rbf_sigma_y": 1},
    "LearnedMixin": {"outer_criterion": "LearnedMixin", "g_lambda_inner": 0, "n_g_update": 0, "rbf_sigma_x": 1,
                     "rbf_sigma_y": 1},
    "RUBi": {"outer_criterion": "RUBi", "g_lambda_inner": 0, "rbf_sigma_x": 1, "rbf_sigma_y": 1},
    "ReBias": {},
}
REBIAS_SEEDS = 3
"""Paper numbers are means of 3 runs (rebias_spec §8, §12)."""
REBIAS_LARGE_G_PRETRAIN_EPOCHS = 30
"""LearnedMixin's g pre-training on ImageNet and Kinetics (spec §5; Biased MNIST: 5)."""

MNIST_RHOS, MNIST_G_PRETRAIN_EPOCHS = 4, 5
MNIST_TRAIN_IMAGES, MNIST_TEST_IMAGES = 60_000, 10_000
"""Biased MNIST: the MNIST train split; each of the three test colourings is the 10,000-image test split."""

IMAGENET_TRAIN_IMAGES = 42 * 1_300
"""Assumed: the 42 wnids' ImageNet-1k train folders, at most 1,300 images each (the spec gives no count)."""
IMAGENET_EVAL_IMAGES = {"unbiased": 42 * 50, "imagenet-a": 21 * 7_500 // 200}
"""9-class validation set: 2,100 images (spec §10). ImageNet-A: assumed 21 wnids (spec §10) x its mean of 37.5
images per class (7,500 images, 200 classes)."""

KINETICS10_TRAIN_VIDEOS = 10 * 616
"""Assumed: 10 classes x Kinetics-400's mean of 616 training videos per class (246,535 / 400)."""
ACTION_EVAL_VIDEOS = {"unbiased": 136, "biased": 10 * 50}
"""Mimetics-10: 136 videos (spec §11); Kinetics-10 val: 50 videos per class (Kinetics-400's validation split)."""


@dataclass(frozen=True)
class DisEntData:
    """A DisEnt dataset: its ratios in Table 1, training-set size, evaluation-set sizes and image shape."""

    ratios: int
    train_images: int
    eval_images: dict[str, int]
    image_shape: tuple[int, int, int]


DISENT_DATA = {
    "cmnist": DisEntData(len(PERCENTS), 55_000, {"valid": 5_000, "test": 10_000}, (3, 28, 28)),
    "cifar10c": DisEntData(len(PERCENTS), 45_000, {"valid": 5_000, "test": 10_000}, (3, 32, 32)),
    "bffhq": DisEntData(1, 19_200, {"valid": 1_000, "test": 1_000}, (3, 224, 224)),
}
"""Sizes of datasets.make_disent_data (MNIST / CIFAR-10 train minus 5,000 valid images; both test splits) and of
BFFHQ (disent_spec §3.1; its test folder holds 1,000 images, of which only the bias-conflicting ones are evaluated:
an upper bound). Only BFFHQ 0.5 % is in DisEnt's Table 1 (scripts/disent_sweep.sh)."""
DISENT_SEEDS = 5
"""scripts/disent_sweep.sh's default seeds (the original scripts repeated each run, disent_spec §2)."""
DISENT_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "Vanilla": ("vanilla_disent", {}),
    "LfF": ("lff", {}),
    "DisEnt": ("disent", {"curr_step": 10_000, "use_lr_decay": True}),
}
"""Registry names and the flags of scripts/disent_sweep.sh that change a step's cost (the swap after curr_step)."""


@dataclass(frozen=True)
class Settings:
    """How steps are measured: device, timed and warm-up steps, autocast, memory format, largest measured batch,
    and the task options (Biased MNIST root, DisEnt datasets)."""

    device: torch.device
    steps: int = 2
    warmup: int = 1
    amp: str = "none"
    channels_last: bool = False
    max_batch: int | None = None
    root: str = "../shared/data"
    datasets: tuple[str, ...] = tuple(DISENT_DATA)

    def autocast(self) -> Callable[[], Any]:
        return autocast_factory(self.device, self.amp)

    @property
    def repeats(self) -> int:
        """Batches a stand-in loader holds: enough for the timed and the warm-up evaluation batches."""
        return max(self.steps, self.warmup)

    def batch(self, paper_batch: int) -> int:
        """The batch size measured for a protocol batch of ``paper_batch``."""
        return min(paper_batch, self.max_batch or paper_batch)


@dataclass(frozen=True)
class Protocol:
    """One method's part of a table: runs, the paper's batch size and epoch length, evaluation cadence and sizes."""

    runs: int
    batch_size: int
    steps_per_epoch: int
    val_epoch_step: int
    eval_samples: Mapping[str, int]
    unit: str = "img"


@dataclass(frozen=True)
class Segment:
    """``steps`` training steps of ``phase``; ``start`` (step-based methods) sets the method's step counter first,
    since DisEnt's step grows once the feature swap starts."""

    phase: Phase
    steps: int
    start: int | None = None


@dataclass
class RunCost:
    """Seconds of one run, split into training (steps and kernel-radius updates) and evaluation."""

    train_seconds: float = 0.0
    train_steps: int = 0
    sigma_seconds: float = 0.0
    eval_seconds: float = 0.0

    @property
    def total(self) -> float:
        return self.train_seconds + self.sigma_seconds + self.eval_seconds


def steps_per_epoch(samples: int, batch_size: int, drop_last: bool) -> int:
    return samples // batch_size if drop_last else math.ceil(samples / batch_size)


def evaluations_per_run(phases: list[Phase], val_epoch_step: int) -> int:
    """The Trainer's evaluations: after every ``val_epoch_step``-th and the last epoch of each phase, and once at
    the end."""
    return 1 + sum(phase.epochs // val_epoch_step + (phase.epochs % val_epoch_step != 0) for phase in phases)


def phase_segments(method: Method, protocol: Protocol) -> list[Segment]:
    """One segment per phase with epochs (DisEnt's main phase is split where the swap starts)."""
    segments = [Segment(phase, phase.num_steps or phase.epochs * protocol.steps_per_epoch)
                for phase in method.phases() if phase.epochs > 0]
    if isinstance(method, DisEnt):
        (main,) = segments
        plain = min(method.config.curr_step + 1, main.steps)
        segments = [Segment(main.phase, plain, start=0), Segment(main.phase, main.steps - plain, start=plain)]
    return segments


def sigma_update_seconds(method: Method, task: Task, protocol: Protocol, settings: Settings, scale: float) -> float:
    """ReBias with median kernel radii recomputed once at start and between main epochs (not after the last): their
    seconds per run; 0 for other methods."""
    if not (isinstance(method, ReBias) and method.uses_median_sigma and method.config.update_sigma_per_epoch):
        return 0.0
    updates = max(1, next(phase.epochs for phase in method.phases() if phase.name == "main"))
    batches = sigma_batches(protocol.steps_per_epoch, method.config.sigma_update_sampling_rate)
    return updates * batches * scale * time_sigma_update(method, task.train_loader, settings.device)


def run_cost(method: Method, task: Task, protocol: Protocol, settings: Settings) -> RunCost:
    """Measure ``method``'s steps and evaluation on ``task`` and extrapolate them to one run of ``protocol``."""
    scale = protocol.batch_size / settings.batch(protocol.batch_size)
    cost = RunCost()
    for segment in phase_segments(method, protocol):
        if segment.steps == 0:
            continue
        if segment.start is not None:
            method.step = segment.start
        seconds = scale * time_steps(method, task.train_loader, segment.phase, settings.steps, settings.warmup,
                                     settings.device, settings.channels_last)
        cost.train_seconds += segment.steps * seconds
        cost.train_steps += segment.steps
    cost.sigma_seconds = sigma_update_seconds(method, task, protocol, settings, scale)
    per_sample = time_evaluation(method, task, settings.steps, settings.warmup, settings.device, settings.autocast())
    evaluation = sum(protocol.eval_samples[name] * seconds for name, seconds in per_sample.items())
    cost.eval_seconds = evaluations_per_run(method.phases(), protocol.val_epoch_step) * evaluation
    return cost


def method_cost(label: str, method: Method, task: Task, protocol: Protocol, settings: Settings) -> float:
    """Print one method's line (mean step at the paper's batch, throughput, one run, runs, total); its seconds."""
    cost = run_cost(method, task, protocol, settings)
    measured = settings.batch(protocol.batch_size)
    step = cost.train_seconds / cost.train_steps
    scaled = f", measured at batch {measured}" if measured < protocol.batch_size else ""
    total = protocol.runs * cost.total
    print(f"  {label:22s} step {1000 * step:9.1f} ms at batch {protocol.batch_size:<3d} "
          f"({protocol.batch_size / step:9.2f} {protocol.unit}/s{scaled})  one run {cost.total / 3600:9.2f} h "
          f"({cost.train_steps} steps, eval {100 * cost.eval_seconds / cost.total:4.1f}%)  "
          f"x{protocol.runs} runs = {total / 3600:10.2f} h", flush=True)
    return total


def measured_config(defaults: Mapping[str, Any], flags: Mapping[str, Any], settings: Settings,
                    untyped: tuple[str, ...] = ()) -> Munch:
    """An entry script's configuration with ``flags``, on the measuring device, at the measured batch size."""
    return build_config(defaults, {"seed": 0, "device": str(settings.device), "amp": settings.amp,
                                   "channels_last": settings.channels_last, **flags,
                                   "batch_size": settings.batch(flags.get("batch_size") or defaults["batch_size"])},
                        untyped=untyped)


def rebias_table_cost(settings: Settings, defaults: Mapping[str, Any], overrides: Mapping[str, Any],
                      build_task: Callable[[Munch], Task], protocol: Protocol, g_pretrain_epochs: int) -> float:
    """Sum of :func:`method_cost` over the four methods of a ReBias table (LearnedMixin pre-trains g for
    ``g_pretrain_epochs`` epochs), each on the task ``build_task`` makes for its configuration."""
    total = 0.0
    for name, flags in REBIAS_METHODS.items():
        if name == "LearnedMixin":
            flags = {**flags, "n_g_pretrain_epochs": g_pretrain_epochs}
        config = measured_config(defaults, {**overrides, **flags}, settings, untyped=REBIAS_UNTYPED_FLAGS)
        seed_everything(0)
        task = build_task(config)
        method = ReBias(config, task, settings.device, settings.autocast())
        total += method_cost(name, method, task, protocol, settings)
    return total


def _shape_overrides(shrink: Mapping[str, int] | None, allowed: tuple[str, ...]) -> dict[str, int]:
    """Test-only smaller inputs/networks; they never change the protocol's step and evaluation counts."""
    shrink = dict(shrink or {})
    unknown = sorted(set(shrink) - set(allowed))
    if unknown:
        raise ValueError(f"shrink accepts {allowed}, got {unknown}")
    return shrink


def biased_mnist_cost(settings: Settings) -> float:
    """ReBias Table 1 (Biased MNIST): 4 methods x 4 rho x 3 seeds, 80 epochs of 235 batches of 256."""
    batch = MNIST_DEFAULTS["batch_size"]
    protocol = Protocol(MNIST_RHOS * REBIAS_SEEDS, batch, steps_per_epoch(MNIST_TRAIN_IMAGES, batch, drop_last=False),
                        MNIST_DEFAULTS["val_epoch_step"], {name: MNIST_TEST_IMAGES for name in EVAL_CORRELATIONS})
    return rebias_table_cost(settings, MNIST_DEFAULTS, {"root": settings.root},
                             lambda config: BiasedMNISTTask(config, settings.device), protocol, MNIST_G_PRETRAIN_EPOCHS)


def imagenet_cost(settings: Settings, shrink: Mapping[str, int] | None = None) -> float:
    """ReBias Table 2 (9-class ImageNet): 4 methods x 3 seeds, 120 epochs, batch 128 at 224 px."""
    batch = IMAGENET_DEFAULTS["batch_size"]
    short_last_batch = 0 < IMAGENET_TRAIN_IMAGES % batch < MIN_BATCH_FOR_HSIC
    protocol = Protocol(REBIAS_SEEDS, batch, steps_per_epoch(IMAGENET_TRAIN_IMAGES, batch, short_last_batch),
                        IMAGENET_DEFAULTS["val_epoch_step"], IMAGENET_EVAL_IMAGES)
    return rebias_table_cost(
        settings, IMAGENET_DEFAULTS, _shape_overrides(shrink, ("image_size",)),
        lambda config: SyntheticImageNetTask(config, settings.device, IMAGENET_EVAL_IMAGES, settings.repeats),
        protocol, REBIAS_LARGE_G_PRETRAIN_EPOCHS)


def action_cost(settings: Settings, shrink: Mapping[str, int] | None = None) -> float:
    """ReBias Table 3 (Kinetics-10 -> Mimetics-10): 4 methods x 3 seeds, 120 epochs, batch 128 clips of 8 x 224 px.

    Evaluated every 20 epochs: Mimetics-10 with 10 clips of 256 px per video, Kinetics-10 val with one clip."""
    batch = ACTION_DEFAULTS["batch_size"]
    protocol = Protocol(REBIAS_SEEDS, batch, steps_per_epoch(KINETICS10_TRAIN_VIDEOS, batch, drop_last=True),
                        ACTION_DEFAULTS["val_epoch_step"], ACTION_EVAL_VIDEOS, unit="clip")
    overrides = _shape_overrides(shrink, ("num_frames", "crop_size", "test_crop_size", "resnet_base_width"))
    return rebias_table_cost(settings, ACTION_DEFAULTS, overrides,
                             lambda config: SyntheticActionTask(config, settings.device, settings.repeats),
                             protocol, REBIAS_LARGE_G_PRETRAIN_EPOCHS)


def disent_cost(settings: Settings) -> float:
    """DisEnt Table 1: Vanilla, LfF, DisEnt x ratios x 5 seeds, 50,000 steps, evaluated every 500 steps."""
    total = 0.0
    for dataset in settings.datasets:
        data = DISENT_DATA[dataset]
        batch = DISENT_BATCH_SIZES[dataset]
        protocol = Protocol(data.ratios * DISENT_SEEDS, batch, steps_per_epoch(data.train_images, batch, True),
                            DISENT_DEFAULTS["val_epoch_step"], data.eval_images)
        for label, (registry, flags) in DISENT_METHODS.items():
            config = measured_config(DISENT_DEFAULTS, {"dataset": dataset, "batch_size": batch, **flags}, settings)
            seed_everything(0)
            images = (config.batch_size, *data.image_shape)
            task = SyntheticDisEntTask(config, settings.device, train_size=data.train_images,
                                       num_classes=DISENT_NUM_CLASSES[dataset], train_shape=images,
                                       eval_shapes={name: images for name in data.eval_images},
                                       criterion_extras={}, repeats=settings.repeats)
            method = METHODS[registry](config, task, settings.device, settings.autocast())
            total += method_cost(f"{dataset} {label}", method, task, protocol, settings)
    return total


COST_ESTIMATORS: dict[str, Callable[[Settings], float]] = {
    "biased_mnist": biased_mnist_cost,
    "disent": disent_cost,
    "imagenet": imagenet_cost,
    "action": action_cost,
}


def _names(value: str | tuple | list, known: Mapping[str, Any], flag: str) -> list[str]:
    """Comma-separated names (python-fire may already have split them), each checked against ``known``."""
    names = [name.strip() for name in (value.split(",") if isinstance(value, str) else value) if name.strip()]
    for name in names:
        require(name in known, f"--{flag}: unknown {flag[:-1]} {name!r}; choose from {', '.join(known)}")
    return names


def main(tasks: str | tuple = "biased_mnist", root: str = "../shared/data", device: str | None = None,
         steps: int = 2, warmup: int = 1, amp: str = "none", channels_last: bool = False,
         max_batch: int | None = None, datasets: str | tuple = ",".join(DISENT_DATA)) -> float:
    """Print the cost of every task of ``tasks`` on this device; return the seconds of all of them."""
    names = _names(tasks, COST_ESTIMATORS, "tasks")
    require(steps >= 1 and warmup >= 0, f"--steps must be >= 1 and --warmup >= 0, got {steps} and {warmup}")
    require(amp in ("none", "bf16"), f"--amp must be 'none' or 'bf16', got {amp!r}")
    require(max_batch is None or max_batch >= 4, f"--max_batch must be at least 4 (unbiased HSIC), got {max_batch}")
    settings = Settings(resolve_device(device), steps, warmup, amp, channels_last, max_batch, root,
                        tuple(_names(datasets, DISENT_DATA, "datasets")))
    torch_device = settings.device
    name = torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "cpu"
    print(f"device={torch_device} ({name}) threads={torch.get_num_threads()} amp={amp} channels_last={channels_last} "
          f"steps={steps} warmup={warmup} max_batch={max_batch} torch={torch.__version__}")
    grand_total = 0.0
    for task in names:
        estimator = COST_ESTIMATORS[task]
        print(f"{task}: {(estimator.__doc__ or '').splitlines()[0]}")
        seconds = estimator(settings)
        grand_total += seconds
        print(f"  => full table: {seconds:.0f} s = {seconds / 3600:.1f} device-hours on {torch_device}", flush=True)
    return grand_total


if __name__ == "__main__":
    run_cli(main)
