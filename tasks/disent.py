"""DisEnt / LfF tasks: Colored MNIST, Corrupted CIFAR-10 and BFFHQ in DisEnt's on-disk layout (disent_spec §3).

Colored MNIST is small: its splits are loaded once, converted to [0, 1] floats (``ToTensor``, once per run instead
of once per batch: 4 x the memory of uint8, about 0.7 GB, for a tenth of a step's time and most of an evaluation's),
and kept on the training device. Its MLPs divide their [0, 1] inputs by 255 (the originals' quirk, spec §9); the
task does that division once at load time too and builds the MLPs with ``divide_by_255=False`` (the same float
values reach the first layer, bit for bit, without a division of every batch by every network). The two others are
read by DataLoader workers. Evaluation loaders: ``valid`` (same bias ratio as training) and ``test`` (unbiased;
BFFHQ: bias-conflicting images only). Besides plain accuracy the task reports, per loader, the accuracy on
bias-aligned (target == bias) and bias-conflicting samples and the unweighted mean over (target, bias) cells.
Generated data are checked against their manifests first (datasets/manifests.py); results.json records the
manifests' digests (``data_manifests``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from munch import Munch
from torch import nn

from datasets.disent_data import DisEntDataset, check_cmnist_variant, has_split, load_split_tensor
from datasets.lff_protocols import percent_dirname
from datasets.manifests import verify_generated_data
from datasets.loaders import DeviceLoader
from datasets.tensor_loader import TensorLoader
from evaluator import CellAccuracy
from models.disent_models import DISENT_MODELS
from tasks.base import Task
from utils.config import ConfigError, require
from utils.seed import derived_seed

NUM_CLASSES = {"cmnist": 10, "cifar10c": 10, "bffhq": 2}
BATCH_SIZES = {"cmnist": 256, "cifar10c": 256, "bffhq": 64}
BACKBONES = {"cmnist": "mlp", "cifar10c": "resnet18", "bffhq": "resnet18"}


MLP_BACKBONES = ("mlp", "mlp_lff")
"""Backbones whose networks divide their inputs by 255 (``divide_by_255``)."""


def input_convention(config: Munch, divide_at_load: bool = True) -> tuple[str, bool]:
    """The backbone of ``config`` and whether the task stores its data divided by 255 for it (Colored MNIST's MLPs,
    unless ``divide_at_load`` is False)."""
    backbone = config.get("backbone") or BACKBONES[config.dataset]
    return backbone, divide_at_load and config.dataset == "cmnist" and backbone in MLP_BACKBONES


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1] (``ToTensor``, the only CMNIST transform)."""
    return images.float().div_(255.0)


def to_mlp_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> ``ToTensor`` then the MLPs' division by 255, as the same two float divisions."""
    return to_unit_range(images).div_(255)


def already_transformed(images: torch.Tensor) -> torch.Tensor:
    """The loader transform of splits converted once at load time."""
    return images


def selection_of(select_on: str, splits: list[str]) -> tuple[str, str] | None:
    """The trainer's model selection for ``--select_on valid|test|final`` (None = the final model)."""
    if select_on == "final":
        return None
    require(select_on in splits, f"--select_on {select_on}: this data set has no {select_on} split "
                                 f"(generated with n_valid 0?); use --select_on final or test")
    return select_on, "f"


def aligned_conflicting_accuracy(cells: CellAccuracy) -> tuple[float, float]:
    """Accuracy (percent) over bias-aligned cells (target == bias) and over all other cells."""
    aligned = torch.eye(*cells.total.shape, dtype=torch.bool)
    results = []
    for mask in (aligned, ~aligned):
        total = int(cells.total[mask].sum())
        results.append(100.0 * int(cells.correct[mask].sum()) / total if total else float("nan"))
    return results[0], results[1]


def group_metrics(loader_name: str, cells: CellAccuracy) -> dict[str, float]:
    """``<loader>_aligned``, ``<loader>_conflicting`` and ``<loader>_cell_mean`` (those with samples)."""
    aligned, conflicting = aligned_conflicting_accuracy(cells)
    metrics = {f"{loader_name}_aligned": aligned, f"{loader_name}_conflicting": conflicting,
               f"{loader_name}_cell_mean": cells.cell_mean()}
    return {key: value for key, value in metrics.items() if not math.isnan(value)}


class DisEntTask(Task):
    """One dataset at one ratio of bias-conflicting samples (``--percent``)."""

    @classmethod
    def name_for(cls, config: Munch) -> str:
        return f"disent_{config.dataset}"

    def __init__(self, config: Munch, device: torch.device, divide_at_load: bool = True):
        """``divide_at_load``: store Colored MNIST divided for the MLP backbones (module docstring); False keeps
        the [0, 1] images for networks with other input conventions (the comparison matrix's)."""
        self.config = config
        dataset = config.dataset
        self.backbone, self.divided_at_load = input_convention(config, divide_at_load)
        self.name = self.name_for(config)
        self.num_classes = self.num_biases = NUM_CLASSES[dataset]
        self.criterion_extras = {}
        root, percent = config.data_dir, config.percent
        batch_size = config.batch_size
        self.data_manifests = verify_generated_data(f"{root}/{dataset}", percent_dirname(percent))
        self.data_variant = None
        if dataset == "cmnist":
            self.data_variant = check_cmnist_variant(root, percent, config.palette, config.render)
            images, targets, biases = self._load_cmnist("train", device)
            splits = ["valid", "test"] if has_split(root, dataset, "valid", percent) else ["test"]
            self.selection = selection_of(config.select_on, splits)
            self.train_loader = TensorLoader(images, targets, biases, batch_size, shuffle=True,
                                             transform=already_transformed, seed=derived_seed(config.seed, 1),
                                             drop_last=config.drop_last)
            self.eval_loaders = {split: TensorLoader(*self._load_cmnist(split, device), batch_size, shuffle=False,
                                                     transform=already_transformed) for split in splits}
            self.train_targets = targets
        else:
            self.selection = selection_of(config.select_on, ["valid", "test"])
            train = DisEntDataset(root, dataset, "train", percent)
            self.train_loader = DeviceLoader(train, batch_size, shuffle=True, device=device,
                                             seed=derived_seed(config.seed, 1), num_workers=config.num_workers,
                                             drop_last=config.drop_last)
            self.eval_loaders = {split: DeviceLoader(DisEntDataset(root, dataset, split, percent), batch_size,
                                                     shuffle=False, device=device, num_workers=config.num_workers)
                                 for split in ("valid", "test")}
            self.train_targets = torch.as_tensor(train.targets, dtype=torch.long, device=device)

    def _load_cmnist(self, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One Colored MNIST split on ``device``: float images in [0, 1] (divided by 255 once more for the MLPs when
        :attr:`divided_at_load`), targets, biases."""
        images, targets, biases = load_split_tensor(self.config.data_dir, "cmnist", split, self.config.percent)
        convert = to_mlp_inputs if self.divided_at_load else to_unit_range
        return convert(images.to(device)), targets.to(device), biases.to(device)

    def build_model(self, disentangle: bool) -> nn.Module:
        """The dataset's backbone: MLP (Colored MNIST) or ResNet18 from scratch, vanilla or DisEnt variant."""
        name = self.backbone + ("_disentangle" if disentangle else "")
        if name not in DISENT_MODELS:
            raise ConfigError(f"--backbone {self.backbone} has no {'DisEnt' if disentangle else 'vanilla'} variant "
                              f"(models: {sorted(DISENT_MODELS)})")
        if self.divided_at_load:
            return DISENT_MODELS[name](self.num_classes, divide_by_255=False)
        return DISENT_MODELS[name](self.num_classes)

    def extra_metrics(self, loader_name: str, cells: CellAccuracy) -> dict[str, float]:
        return group_metrics(loader_name, cells)

    def results_fields(self) -> dict[str, Any]:
        fields = {"dataset": self.config.dataset, "percent": float(str(self.config.percent).removesuffix("pct"))}
        if self.data_variant is not None:
            fields["data_variant"] = self.data_variant
        if self.data_manifests is not None:
            fields["data_manifests"] = self.data_manifests
        return fields

