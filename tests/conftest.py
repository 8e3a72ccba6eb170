"""Shared fixtures: the real MNIST from ../shared/data when present, else small generated MNIST-format files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from datasets.mnist_io import write_idx  # noqa: E402

SHARED_MNIST = REPO.parent / "shared" / "data"


def make_fake_mnist(root: Path, n_train: int = 2000, n_test: int = 500, seed: int = 0) -> Path:
    """Write MNIST-format IDX files whose digits are class-dependent blobs (learnable, not real digits)."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    templates = np.zeros((10, 28, 28), dtype=np.uint8)
    for digit in range(10):
        row, col = divmod(digit, 4)
        templates[digit, 4 + 6 * row: 10 + 6 * row, 3 + 6 * col: 9 + 6 * col] = 255
        templates[digit, 2:26, 13 + (digit % 3)] = 200
    for train, n in ((True, n_train), (False, n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = templates[labels].copy()
        noise = rng.random(images.shape) < 0.02
        images[noise] = 128
        prefix = "train" if train else "t10k"
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory) -> Path:
    """Directory usable as ``--root``: the real MNIST when ../shared has it, otherwise generated files."""
    if (SHARED_MNIST / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        return SHARED_MNIST
    return make_fake_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="session")
def fake_mnist_root(tmp_path_factory) -> Path:
    """Always-generated small MNIST-format data (fast tests that must not depend on ../shared)."""
    return make_fake_mnist(tmp_path_factory.mktemp("fake_mnist"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, fake_mnist_root) -> Path:
    """DisEnt-layout Colored MNIST at 5 pct (300 valid images) generated from the fake MNIST, once per module."""
    from datasets.make_disent_data import cmnist

    out = tmp_path_factory.mktemp("disent_data")
    cmnist(str(fake_mnist_root), str(out), percents="5", n_valid=300)
    return out


@pytest.fixture(scope="session", autouse=True)
def lff_palette(tmp_path_factory) -> Path:
    """LfF's colors.th from ../shared when present; otherwise the ten pure hues (in [0, 1]) in its format (10x3x1x1
    float tensor), exported as ``$LFF_PALETTE`` so that subprocesses read it too."""
    import torch

    from datasets.lff_protocols import DEFAULT_COLORS_PATH, HUES_PALETTE, REPO_ROOT
    real = REPO_ROOT / DEFAULT_COLORS_PATH
    if real.exists() or os.environ.get("LFF_PALETTE"):
        return Path(os.environ.get("LFF_PALETTE") or real)
    path = tmp_path_factory.mktemp("lff_resource") / "colors.th"
    torch.save(torch.as_tensor(HUES_PALETTE / 255, dtype=torch.float32).reshape(10, 3, 1, 1), path)
    os.environ["LFF_PALETTE"] = str(path)
    return path
