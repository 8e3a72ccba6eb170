"""ReBias' Biased (colour) MNIST: a binarised white digit on a background whose colour is correlated with the digit.

For each digit class c holding n_c images, a fraction rho (``int(n_c * rho)`` images) gets the class' own colour c;
the remaining r images are split into consecutive chunks of ``ceil(r / n_confusing_labels)`` images, each chunk
taking one of the colours ``(c+1)%10 .. (c+n_confusing_labels)%10`` in a shuffled order. The training set uses the
chosen rho; the evaluation sets are built from the MNIST test split with rho=1 ("biased"), rho=0.1 ("unbiased",
near-uniform colours) and rho=0 ("rho0", no sample in its own colour).

Everything is built once, vectorised, into uint8 tensors (N, 3, 28, 28) that live on the training device.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor

from datasets.mnist_io import load_mnist

COLOUR_MAP = torch.tensor(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [225, 225, 0], [225, 0, 225],
     [0, 255, 255], [255, 128, 0], [255, 0, 128], [128, 0, 255], [128, 128, 128]],
    dtype=torch.uint8,
)
NUM_CLASSES = 10
EVAL_CORRELATIONS = {"biased": 1.0, "unbiased": 0.1, "rho0": 0.0}


def assign_bias_labels(targets: Tensor, rho: float, n_confusing_labels: int, rng: np.random.Generator) -> Tensor:
    """Colour (bias) label of every sample following ReBias' protocol (see the module docstring)."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [0, 1], got {rho}")
    if not 1 <= n_confusing_labels <= NUM_CLASSES - 1:
        raise ValueError(f"n_confusing_labels must lie in 1..9, got {n_confusing_labels}")
    targets_np = targets.cpu().numpy()
    bias = np.empty_like(targets_np)
    for label in range(NUM_CLASSES):
        indices = rng.permutation(np.flatnonzero(targets_np == label))
        n_aligned = int(len(indices) * rho)
        bias[indices[:n_aligned]] = label
        conflicting = indices[n_aligned:]
        if len(conflicting) == 0:
            continue
        chunk = math.ceil(len(conflicting) / n_confusing_labels)
        other_colours = rng.permutation([(label + k) % NUM_CLASSES for k in range(1, n_confusing_labels + 1)])
        bias[conflicting] = other_colours[np.arange(len(conflicting)) // chunk]
    return torch.from_numpy(bias).long()


def colourise(digits: Tensor, bias_labels: Tensor) -> Tensor:
    """``uint8 (N, 3, H, W)`` images: pixels > 0 of the digit become white, the background takes the bias colour."""
    foreground = (digits > 0).unsqueeze(1)
    background = COLOUR_MAP.to(digits.device)[bias_labels].view(-1, 3, 1, 1)
    return torch.where(foreground, torch.full_like(background, 255), background).expand(-1, 3, *digits.shape[1:])\
        .contiguous()


class ColourBiasedMNIST:
    """In-memory Biased MNIST split: ``images`` uint8 (N, 3, 28, 28), ``targets`` and ``biases`` int64 (N,)."""

    def __init__(self, root: str | os.PathLike, train: bool, rho: float, n_confusing_labels: int = 9,
                 seed: int = 0, download: bool = True):
        digits, targets = load_mnist(root, train=train, download=download)
        rng = np.random.default_rng(seed)
        self.targets = targets
        self.biases = assign_bias_labels(targets, rho, n_confusing_labels, rng)
        self.images = colourise(digits, self.biases)
        self.rho = rho

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device: torch.device | str) -> "ColourBiasedMNIST":
        self.images, self.targets, self.biases = (t.to(device) for t in (self.images, self.targets, self.biases))
        return self


def normalise_uint8(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], i.e. ``ToTensor`` followed by ``Normalize(0.5, 0.5)``."""
    return images.float().div_(127.5).sub_(1.0)
