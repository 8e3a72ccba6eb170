"""The Biased MNIST task of ReBias (Table 1)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from munch import Munch
from torch import nn

from datasets.colour_mnist import EVAL_CORRELATIONS, ColourBiasedMNIST, normalise_uint8
from datasets.tensor_loader import SeedStackedLoader, TensorLoader
from models.mnist_models import SimpleConvNet
from tasks.base import Task
from utils.seed import derived_seed, seed_config


class BiasedMNISTTask(Task):
    """ReBias' Biased MNIST: train colouring with rho = ``train_correlation``, three colourings of the test split."""

    name = "biased_mnist"
    num_classes = 10
    num_biases = 10

    def __init__(self, config: Munch, device: torch.device):
        self.config = config
        seed = config.seed
        train = ColourBiasedMNIST(config.root, train=True, rho=config.train_correlation,
                                  n_confusing_labels=config.n_confusing_labels, seed=derived_seed(seed, 0)).to(device)
        self.train_loader = TensorLoader(train.images, train.targets, train.biases, config.batch_size, shuffle=True,
                                         transform=normalise_uint8, seed=derived_seed(seed, 1))
        self.eval_loaders = {}
        for key, (name, rho) in enumerate(EVAL_CORRELATIONS.items(), start=2):
            n_confusing = config.n_confusing_labels if name == "biased" else 9
            split = ColourBiasedMNIST(config.root, train=False, rho=rho, n_confusing_labels=n_confusing,
                                      seed=derived_seed(seed, key)).to(device)
            self.eval_loaders[name] = TensorLoader(split.images, split.targets, split.biases, config.batch_size,
                                                   shuffle=False, transform=normalise_uint8)
        self.criterion_extras = {"feat_dim": 128, "num_classes": self.num_classes}

    def _builder(self, kernel_size: int) -> Callable[[], nn.Module]:
        return lambda: SimpleConvNet(self.num_classes, kernel_size=kernel_size, feature_pos=self.config.feature_pos)

    def build_f(self) -> nn.Module:
        return self._builder(self.config.f_kernel_size)()

    def build_g(self) -> nn.Module:
        return self._builder(self.config.g_kernel_size)()

    def results_fields(self) -> dict[str, Any]:
        return {"train_correlation": self.config.train_correlation}



class SeedStackedBiasedMNISTTask(Task):
    """Biased MNIST for ``--seeds``: one :class:`BiasedMNISTTask` per seed (its own colouring and batch order),
    training batches zipped for seed-stacked networks. Evaluation stays per seed (``seed_tasks[k].eval_loaders``)."""

    name = "biased_mnist_seeds"
    num_classes = BiasedMNISTTask.num_classes
    num_biases = BiasedMNISTTask.num_biases

    def __init__(self, config: Munch, device: torch.device):
        self.config = config
        self.seed_tasks = [BiasedMNISTTask(seed_config(config, seed, run_name), device)
                           for seed, run_name in zip(config.seeds, config.seed_run_names, strict=True)]
        self.train_loader = SeedStackedLoader([task.train_loader for task in self.seed_tasks])
        self.eval_loaders = {}
        self.criterion_extras = self.seed_tasks[0].criterion_extras

    def results_fields(self) -> dict[str, Any]:
        return self.seed_tasks[0].results_fields()
