"""Reading DisEnt's on-disk datasets (spec §3.1-3.2): ``cmnist``, ``cifar10c`` and ``bffhq``.

Labels come only from file names ``<id>_<target>_<bias>.<ext>``; bias-aligned means ``target == bias``. Files are
listed in sorted path order (train = sorted align files, then sorted conflict files), so the sample index used by
the per-sample loss EMA is deterministic. Items are ``(image, target, bias, index)``.

Folders (``root`` = DisEnt's ``--data_dir``, ``pct`` e.g. ``1pct``)::

    cmnist:   <root>/cmnist/<pct>/{align,conflict}/*/*, <root>/cmnist/<pct>/valid/* (flat), <root>/cmnist/test/*/*
    cifar10c: <root>/cifar10c/<pct>/{align,conflict}/*/*, <root>/cifar10c/<pct>/valid/*/*, <root>/cifar10c/test/*/*
    bffhq:    <root>/bffhq/<pct>/{align,conflict}/*/*, <root>/bffhq/valid/* and <root>/bffhq/test/* (flat, shared)

For BFFHQ the test split keeps only bias-conflicting images, as the original code does. DisEnt's README spells the
train folder ``conlict``; its code reads ``conflict`` and, given ``conlict/``, silently trains without any
bias-conflicting image. Here a ``conlict/`` folder (without ``conflict/``) is read with a warning naming the
spelling (:func:`conflict_folder`).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms as T

from datasets.lff_protocols import percent_dirname
from datasets.image_io import load_rgb
from datasets.manifests import IMAGE_SUFFIXES, MANIFEST_NAME, DataMismatchError
from datasets.mnist_io import DataNotFoundError

DATASETS = ("cmnist", "cifar10c", "bffhq")
SPLITS = ("train", "valid", "test")
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
AUGMENT_BY_DEFAULT = {"cmnist": False, "cifar10c": True, "bffhq": True}


def parse_labels(path: str | os.PathLike) -> tuple[int, int]:
    """``(target, bias)`` from a file name ending in ``_<target>_<bias>.<ext>``."""
    parts = Path(path).stem.split("_")
    try:
        if len(parts) < 3:
            raise ValueError
        return int(parts[-2]), int(parts[-1])
    except ValueError:
        raise ValueError(f"cannot parse target and bias from '{path}': DisEnt file names must end in "
                         f"'_<target>_<bias>.<ext>'") from None


def _listed(directory: Path, nested: bool) -> list[Path]:
    if not directory.is_dir():
        raise DataNotFoundError(f"split folder '{directory}' not found: expected DisEnt's layout "
                                f"(see datasets/disent_data.py or run python -m datasets.make_disent_data)")
    pattern = "*/*" if nested else "*"
    files = sorted(p for p in directory.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataNotFoundError(f"no images in '{directory}' (looked for '{pattern}' with suffixes {IMAGE_SUFFIXES})")
    return files


CONFLICT_FOLDER, README_SPELLING = "conflict", "conlict"


def conflict_folder(group: Path) -> Path:
    """The training split's bias-conflicting folder: ``conflict/``, or else DisEnt's README's ``conlict/`` (with a
    warning naming the spelling); both present is refused, as one of them would be left out."""
    folder, misspelt = group / CONFLICT_FOLDER, group / README_SPELLING
    if not misspelt.is_dir():
        return folder
    if folder.is_dir():
        raise DataMismatchError(f"'{group}' holds both '{CONFLICT_FOLDER}/' and '{README_SPELLING}/' (DisEnt's "
                                f"README's spelling): merge them into '{CONFLICT_FOLDER}/'")
    warnings.warn(f"reading the bias-conflicting training images from '{misspelt}': '{README_SPELLING}' is the "
                  f"spelling of DisEnt's README, its code reads '{CONFLICT_FOLDER}/' (and trains on no conflicting "
                  f"image from '{README_SPELLING}/'); rename the folder to '{CONFLICT_FOLDER}'", stacklevel=2)
    return misspelt


def split_files(root: str | os.PathLike, dataset: str, split: str, percent: float | str = "1pct") -> list[Path]:
    """Image paths of one split in DisEnt's order (train: sorted align files, then sorted conflict files)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset '{dataset}', expected one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}', expected one of {SPLITS}")
    base = Path(root) / dataset
    group = base / percent_dirname(percent)
    if split == "train":
        return _listed(group / "align", nested=True) + _listed(conflict_folder(group), nested=True)
    if dataset == "bffhq":
        files = _listed(base / split, nested=False)
        if split == "test":
            files = [f for f in files if parse_labels(f)[0] != parse_labels(f)[1]]
        return files
    if split == "valid":
        return _listed(group / "valid", nested=dataset == "cifar10c")
    return _listed(base / "test", nested=True)


def build_transform(dataset: str, train: bool, augment: bool | None = None) -> T.Compose:
    """DisEnt's transforms: CMNIST ``ToTensor`` only; CIFAR10C/BFFHQ CIFAR-normalised, with crop+flip in training.

    ``augment`` (training only) defaults to the original's choice per dataset (off for CMNIST, on otherwise).
    """
    augment = AUGMENT_BY_DEFAULT[dataset] if augment is None else augment
    if dataset == "cmnist":
        return T.Compose([T.ToTensor()])
    normalise = T.Normalize(CIFAR_MEAN, CIFAR_STD)
    if dataset == "cifar10c":
        size, resize = 32, []
    elif dataset == "bffhq":
        size, resize = 224, [T.Resize((224, 224))]
    else:
        raise ValueError(f"unknown dataset '{dataset}', expected one of {DATASETS}")
    if train and augment:
        return T.Compose([*resize, T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalise])
    return T.Compose([*resize, T.ToTensor(), normalise])


class DisEntDataset(Dataset):
    """One split of a DisEnt dataset; ``targets`` and ``biases`` are int64 tensors in item order."""

    def __init__(self, root: str | os.PathLike, dataset: str, split: str, percent: float | str = "1pct",
                 augment: bool | None = None, transform: T.Compose | None = None):
        self.files = split_files(root, dataset, split, percent)
        labels = np.array([parse_labels(f) for f in self.files], dtype=np.int64).reshape(-1, 2)
        self.targets = torch.from_numpy(labels[:, 0].copy())
        self.biases = torch.from_numpy(labels[:, 1].copy())
        self.dataset, self.split = dataset, split
        self.transform = transform if transform is not None else build_transform(dataset, split == "train", augment)

    @property
    def num_classes(self) -> int:
        return int(self.targets.max()) + 1

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int, int]:
        image = load_rgb(self.files[index])
        return self.transform(image), int(self.targets[index]), int(self.biases[index]), index


def read_manifest(root: str | os.PathLike, dataset: str, percent: float | str) -> dict | None:
    """The generator's manifest of one ratio's folder, or None for data without one (e.g. DisEnt's released data)."""
    path = Path(root) / dataset / percent_dirname(percent) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else None


def cmnist_variant(manifest: dict) -> dict:
    """The Colored MNIST choices a manifest records; manifests from before renderers existed used LfF's renderer."""
    settings = manifest.get("settings", {})
    return {"palette": settings.get("palette"), "render": settings.get("render", "lff"),
            "n_valid": settings.get("n_valid")}


def check_cmnist_variant(root: str | os.PathLike, percent: float | str, palette: str, render: str) -> dict | None:
    """Refuse Colored MNIST data whose manifest names another palette or renderer than ``palette``/``render``;
    return the recorded variant (None when the data have no manifest)."""
    manifest = read_manifest(root, "cmnist", percent)
    if manifest is None:
        return None
    variant = cmnist_variant(manifest)
    path = Path(root) / "cmnist" / percent_dirname(percent) / MANIFEST_NAME
    for flag, wanted in (("palette", palette), ("render", render)):
        if variant[flag] != wanted:
            raise DataMismatchError(
                f"'{path}' records {flag} '{variant[flag]}' but --{flag} is '{wanted}': pass --{flag} "
                f"{variant[flag]}, or regenerate the data with python -m datasets.make_disent_data cmnist "
                f"--{flag} {wanted}")
    return variant


def has_split(root: str | os.PathLike, dataset: str, split: str, percent: float | str) -> bool:
    """Whether a split's folder exists (Colored MNIST generated with n_valid 0, LfF's protocol, has no valid)."""
    try:
        split_files(root, dataset, split, percent)
    except DataNotFoundError:
        return False
    return True


def load_split_tensor(root: str | os.PathLike, dataset: str, split: str,
                      percent: float | str = "1pct") -> tuple[Tensor, Tensor, Tensor]:
    """A whole split as ``(uint8 (N, 3, H, W), targets int64, biases int64)`` for device-resident training."""
    files = split_files(root, dataset, split, percent)
    images = []
    for path in files:
        images.append(np.asarray(load_rgb(path)))
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"images of {dataset}/{split} under '{root}' have different sizes {sorted(shapes)}")
    labels = np.array([parse_labels(f) for f in files], dtype=np.int64)
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return stacked, torch.from_numpy(labels[:, 0].copy()), torch.from_numpy(labels[:, 1].copy())
