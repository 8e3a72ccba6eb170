"""The comparison matrix's task (main_matrix.py): one benchmark of utils/matrix.py with one family's networks.

The data are those of the benchmark's own task, unchanged (Biased MNIST: :class:`BiasedMNISTTask`'s colourings;
Colored MNIST: :class:`DisEntTask`'s generated splits), so every method of a column trains on the same
``(x, target, bias, index)`` batches. Every evaluation loader reports its accuracy and the accuracies of bias-aligned
and bias-conflicting samples and the mean over (target, bias) cells; the matrix's number is the benchmark's unbiased
split at the end of training (no model selection).
"""
from __future__ import annotations

import shlex
from typing import Any

import torch
from munch import Munch
from torch import nn

from datasets.disent_data import DataMismatchError
from evaluator import CellAccuracy
from models.matrix_models import MATRIX_MODELS, ColourHistogramNet, WithFeatures
from models.mnist_models import SimpleConvNet
from tasks.base import Task
from tasks.biased_mnist import BiasedMNISTTask
from tasks.disent import DisEntTask, group_metrics
from utils.matrix import BENCHMARKS, FAMILIES

INPUT_RANGES = {"biased_mnist": (-1.0, 1.0), "cmnist": (0.0, 1.0)}
"""The range of the network inputs each data source feeds (Biased MNIST is normalised to [-1, 1])."""


class MatrixTask(Task):
    """``config.benchmark`` trained with ``config.family``'s networks."""

    name = "matrix"
    num_classes = 10
    num_biases = 10
    selection = None

    def __init__(self, config: Munch, device: torch.device):
        self.config = config
        self.benchmark = BENCHMARKS[config.benchmark]
        self.family = FAMILIES[config.family]
        if self.benchmark.source == "biased_mnist":
            self.inner = BiasedMNISTTask(config, device)
        else:
            self.inner = DisEntTask(config, device, divide_at_load=False)
        self._check_data()
        self.train_loader = self.inner.train_loader
        self.eval_loaders = self.inner.eval_loaders
        self.train_targets = self.train_loader.targets
        with torch.random.fork_rng(devices=[]):
            f_dim, g_dim = self.build_f().feature_dim, self.build_g().feature_dim
        self.criterion_extras = {"feat_dim": f_dim, "f_feat_dim": f_dim, "g_feat_dim": g_dim,
                                 "num_classes": self.num_classes}

    def _check_data(self) -> None:
        """Refuse generated Colored MNIST without a manifest or with the other benchmark's layout: LfF's protocol
        has no valid split, DisEnt's has one (5,000 images for the matrix's runs; the report checks the count)."""
        expected = self.benchmark.n_valid
        if expected is None:
            return
        variant = self.inner.data_variant
        n_valid = None if variant is None else variant.get("n_valid")
        if n_valid is None or (n_valid > 0) != (expected > 0):
            path = f"{self.config.data_dir}/cmnist/{self.benchmark.percent}/manifest.json"
            found = "no manifest n_valid" if n_valid is None else f"n_valid {n_valid}"
            raise DataMismatchError(f"{path}: {found}, but {self.benchmark.name} reads data generated with n_valid "
                                    f"{expected}: {shlex.join(self.benchmark.data_command('python', 'MNIST_ROOT'))}")

    def _network(self, name: str) -> nn.Module:
        return MATRIX_MODELS[name](self.num_classes)

    def build_f(self) -> nn.Module:
        """f of the f/g methods, returning ``(logits, features)``."""
        name = self.family.f_network(self.benchmark)
        if name == "simple_conv":
            return SimpleConvNet(self.num_classes, kernel_size=7, feature_pos=self.config.feature_pos)
        return WithFeatures(self._network(name))

    def build_g(self) -> nn.Module:
        """The biased network g of the f/g methods, returning ``(logits, features)``."""
        if self.family.g == "simple_conv_k1":
            return SimpleConvNet(self.num_classes, kernel_size=1, feature_pos=self.config.feature_pos)
        return ColourHistogramNet(self.num_classes, value_range=INPUT_RANGES[self.benchmark.source])

    def build_model(self, disentangle: bool) -> nn.Module:
        """LfF's networks (logits) or DisEnt's encoders (``fc`` on ``[z_i ; z_b]``) of the family."""
        name = self.family.encoder(self.benchmark) if disentangle else self.family.f_network(self.benchmark)
        return self._network(name)

    def extra_metrics(self, loader_name: str, cells: CellAccuracy) -> dict[str, float]:
        return group_metrics(loader_name, cells)

    def results_fields(self) -> dict[str, Any]:
        return {**self.inner.results_fields(), "benchmark": self.benchmark.name, "family": self.family.name,
                "matrix_method": self.config.method, "networks": self.family.networks(self.benchmark)}
