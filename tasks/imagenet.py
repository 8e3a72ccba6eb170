"""The 9-class ImageNet task of ReBias (Table 2): f = ResNet-18, g = BagNet-18.

Evaluation (spec §9), from one pass over the 9-class validation set:

* ``biased``: top-1 accuracy;
* ``unbiased``: for each of the three texture clusterings k, A_k = unweighted mean of the per-(class, cluster)
  accuracies over cells with at least ``min_cell_count`` samples; the metric is (A_1 + A_2 + A_3) / 3;

and ``imagenet-a``: top-1 accuracy on ImageNet-A's images of the 42 wnids (when ``--imageneta_root`` is given).
"""
from __future__ import annotations

from typing import Any

import torch
from munch import Munch
from torch import nn

from datasets.imagenet import CLASS_NAMES, NineClassImageNet
from datasets.loaders import DeviceLoader
from evaluator import CellAccuracy
from models.imagenet_models import BagNet18, ResNet18
from tasks.base import Task
from utils.distributed import is_main_process, world_size
from utils.seed import derived_seed

MIN_BATCH_FOR_HSIC = 4


def _drop_short_last_batch(num_samples: int, batch_size: int) -> bool:
    """Drop the last training batch only when it would be too small for the unbiased HSIC (and BatchNorm)."""
    per_process = num_samples // world_size() if world_size() > 1 else num_samples
    return 0 < per_process % batch_size < MIN_BATCH_FOR_HSIC


class ImageNetTask(Task):
    """9-class ImageNet: train on ``train_root``; evaluate on ``val_root`` (with texture clusters) and ImageNet-A."""

    name = "imagenet"
    num_classes = len(CLASS_NAMES)
    num_biases = 9
    """Texture clusters per clustering (the bias label of the validation set); elsewhere bias = target."""

    def __init__(self, config: Munch, device: torch.device):
        self.config = config
        seed = config.seed
        train = NineClassImageNet(config.train_root, train=True, image_size=config.image_size)
        self.train_loader = DeviceLoader(train, config.batch_size, shuffle=True, device=device,
                                         seed=derived_seed(seed, 1), num_workers=config.num_workers,
                                         drop_last=_drop_short_last_batch(len(train), config.batch_size))
        val = NineClassImageNet(config.val_root, train=False, image_size=config.image_size,
                                cluster_csv=config.cluster_csv)
        self.eval_loaders = {"unbiased": DeviceLoader(val, config.batch_size, shuffle=False, device=device,
                                                       num_workers=config.num_workers)}
        if config.imageneta_root is not None:
            imagenet_a = NineClassImageNet(config.imageneta_root, train=False, image_size=config.image_size,
                                           require_all_wnids=False)
            if imagenet_a.missing_wnids and is_main_process():
                print(f"ImageNet-A '{config.imageneta_root}': {len(imagenet_a)} images; "
                      f"{len(imagenet_a.missing_wnids)} of the 42 wnids absent: {' '.join(imagenet_a.missing_wnids)}",
                      flush=True)
            self.eval_loaders["imagenet-a"] = DeviceLoader(imagenet_a, config.batch_size, shuffle=False,
                                                           device=device, num_workers=config.num_workers)
        self.criterion_extras = {"feat_dim": 512, "num_classes": self.num_classes}

    def build_f(self) -> nn.Module:
        return ResNet18(self.num_classes, feature_pos=self.config.feature_pos)

    def build_g(self) -> nn.Module:
        return BagNet18(self.num_classes, feature_pos=self.config.feature_pos)

    def metric(self, loader_name: str, cells: CellAccuracy) -> float:
        """``unbiased``: mean over the three clusterings of the cell-mean accuracy (spec §9); else top-1."""
        if loader_name == "unbiased":
            return cells.cell_mean(self.config.min_cell_count)
        return cells.accuracy()

    def extra_metrics(self, loader_name: str, cells: CellAccuracy) -> dict[str, float]:
        """``biased`` = top-1 on the same validation pass as ``unbiased`` (the original evaluated the set twice)."""
        return {"biased": cells.accuracy()} if loader_name == "unbiased" else {}

    def results_fields(self) -> dict[str, Any]:
        return {"image_size": self.config.image_size}
