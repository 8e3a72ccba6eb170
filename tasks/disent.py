"""DisEnt / LfF tasks: Colored MNIST, Corrupted CIFAR-10 and BFFHQ in DisEnt's on-disk layout (disent_spec §3).

Colored MNIST is small: its splits are loaded once into uint8 tensors on the training device. The two others are
read by DataLoader workers. Evaluation loaders: ``valid`` (same bias ratio as training) and ``test`` (unbiased;
BFFHQ: bias-conflicting images only). Besides plain accuracy the task reports, per loader, the accuracy on
bias-aligned (target == bias) and bias-conflicting samples and the unweighted mean over (target, bias) cells.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from munch import Munch
from torch import nn

from datasets.disent_data import DisEntDataset, load_split_tensor
from datasets.loaders import DeviceLoader
from datasets.tensor_loader import TensorLoader
from evaluator import CellAccuracy
from models.disent_models import DISENT_MODELS
from tasks.base import Task
from utils.seed import derived_seed

NUM_CLASSES = {"cmnist": 10, "cifar10c": 10, "bffhq": 2}
BATCH_SIZES = {"cmnist": 256, "cifar10c": 256, "bffhq": 64}
BACKBONES = {"cmnist": "mlp", "cifar10c": "resnet18", "bffhq": "resnet18"}


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1] (``ToTensor``, the only CMNIST transform)."""
    return images.float().div_(255.0)


def aligned_conflicting_accuracy(cells: CellAccuracy) -> tuple[float, float]:
    """Accuracy (percent) over bias-aligned cells (target == bias) and over all other cells."""
    aligned = torch.eye(*cells.total.shape, dtype=torch.bool)
    results = []
    for mask in (aligned, ~aligned):
        total = int(cells.total[mask].sum())
        results.append(100.0 * int(cells.correct[mask].sum()) / total if total else float("nan"))
    return results[0], results[1]


class DisEntTask(Task):
    """One dataset at one ratio of bias-conflicting samples (``--percent``)."""

    def __init__(self, config: Munch, device: torch.device):
        self.config = config
        dataset = config.dataset
        self.name = f"disent_{dataset}"
        self.num_classes = self.num_biases = NUM_CLASSES[dataset]
        self.criterion_extras = {}
        self.selection = ("test" if config.select_on_test else "valid", "f")
        root, percent = config.data_dir, config.percent
        batch_size = config.batch_size
        if dataset == "cmnist":
            images, targets, biases = (t.to(device) for t in load_split_tensor(root, dataset, "train", percent))
            self.train_loader = TensorLoader(images, targets, biases, batch_size, shuffle=True,
                                             transform=to_unit_range, seed=derived_seed(config.seed, 1),
                                             drop_last=True)
            self.eval_loaders = {}
            for split in ("valid", "test"):
                images, targets_split, biases_split = (t.to(device) for t in load_split_tensor(root, dataset, split,
                                                                                               percent))
                self.eval_loaders[split] = TensorLoader(images, targets_split, biases_split, batch_size,
                                                        shuffle=False, transform=to_unit_range)
            self.train_targets = targets
        else:
            train = DisEntDataset(root, dataset, "train", percent)
            self.train_loader = DeviceLoader(train, batch_size, shuffle=True, device=device,
                                             seed=derived_seed(config.seed, 1), num_workers=config.num_workers,
                                             drop_last=True)
            self.eval_loaders = {split: DeviceLoader(DisEntDataset(root, dataset, split, percent), batch_size,
                                                     shuffle=False, device=device, num_workers=config.num_workers)
                                 for split in ("valid", "test")}
            self.train_targets = torch.as_tensor(train.targets, dtype=torch.long, device=device)

    def build_model(self, disentangle: bool) -> nn.Module:
        """The dataset's backbone: MLP (Colored MNIST) or ResNet18 from scratch, vanilla or DisEnt variant."""
        name = BACKBONES[self.config.dataset] + ("_disentangle" if disentangle else "")
        return DISENT_MODELS[name](self.num_classes)

    def extra_metrics(self, loader_name: str, cells: CellAccuracy) -> dict[str, float]:
        aligned, conflicting = aligned_conflicting_accuracy(cells)
        metrics = {f"{loader_name}_aligned": aligned, f"{loader_name}_conflicting": conflicting,
                   f"{loader_name}_cell_mean": cells.cell_mean()}
        return {key: value for key, value in metrics.items() if not math.isnan(value)}

    def results_fields(self) -> dict[str, Any]:
        return {"dataset": self.config.dataset, "percent": float(str(self.config.percent).removesuffix("pct"))}

