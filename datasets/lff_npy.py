"""LfF's own Colored MNIST files (alinlab/LfF ``make_dataset.py``), read without running code from them.

Layout (``DATA_DIR`` = LfF's ``data_dir``; ``<ratio>`` = 0.05, 0.02, 0.01, 0.005 for 5, 2, 1, 0.5 % conflicting)::

    DATA_DIR/ColoredMNIST-Skewed<ratio>-Severity<s>/attr_names.pkl          ['digit', 'color']
    DATA_DIR/ColoredMNIST-Skewed<ratio>-Severity<s>/train/images.npy        uint8 (N, 28, 28, 3)
    DATA_DIR/ColoredMNIST-Skewed<ratio>-Severity<s>/train/attrs.npy         uint8 (N, 2): (digit, colour)
    DATA_DIR/ColoredMNIST-Skewed<ratio>-Severity<s>/valid/{images,attrs}.npy   MNIST's test split, aligned ratio 0.1

LfF's ``valid`` is its only evaluation split, the unbiased one: DisEnt's ``test`` split
(``python -m datasets.make_disent_data from_lff`` converts a folder into DisEnt's layout).
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from datasets.mnist_io import CorruptDataError, DataNotFoundError

LFF_SKEWED_RATIOS = {0.5: "0.005", 1.0: "0.01", 2.0: "0.02", 5.0: "0.05"}
"""Percent of bias-conflicting training samples -> the ``Skewed`` part of LfF's folder names (``str`` of LfF's
float ratios)."""
LFF_SPLITS = {"train": "train", "test": "valid"}
"""This project's split -> LfF's folder (LfF calls its unbiased evaluation split ``valid``)."""
ATTR_NAMES = ["digit", "color"]


def lff_folder(data_dir: str | Path, percent: float, severity: int = 4) -> Path:
    """LfF's Colored MNIST folder of a ratio and a colour-noise severity."""
    if percent not in LFF_SKEWED_RATIOS:
        raise ValueError(f"LfF's Colored MNIST has {sorted(LFF_SKEWED_RATIOS)} % conflicting samples, not {percent}")
    return Path(data_dir) / f"ColoredMNIST-Skewed{LFF_SKEWED_RATIOS[percent]}-Severity{severity}"


class _NoGlobals(pickle.Unpickler):
    """Plain data only (lists, strings, numbers): any class or function in the file is refused."""

    def find_class(self, module: str, name: str) -> None:
        raise pickle.UnpicklingError(f"{module}.{name}")


def read_attr_names(folder: Path) -> list[str]:
    """``attr_names.pkl``: LfF's attribute names, which must be ``['digit', 'color']``."""
    path = folder / "attr_names.pkl"
    if not path.is_file():
        raise DataNotFoundError(f"'{path}' not found: expected LfF's Colored MNIST folder (make_dataset.py)")
    try:
        names = _NoGlobals(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise CorruptDataError(f"'{path}' is not a pickled list of attribute names ({error})") from None
    if names != ATTR_NAMES:
        raise CorruptDataError(f"'{path}' names the attributes {names!r}; LfF's Colored MNIST has {ATTR_NAMES}")
    return names


def read_lff_split(folder: Path, split: str) -> tuple[Tensor, Tensor, Tensor]:
    """One split (``train`` or ``test``, LfF's ``valid``) as ``(uint8 (N, 3, 28, 28), targets, biases)`` int64, in
    the file's order; the arrays are read with ``allow_pickle=False``."""
    read_attr_names(folder)
    directory = folder / LFF_SPLITS[split]
    arrays = []
    for name in ("images.npy", "attrs.npy"):
        path = directory / name
        if not path.is_file():
            raise DataNotFoundError(f"'{path}' not found: expected LfF's layout {LFF_SPLITS[split]}/{{images,attrs}}.npy")
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except ValueError as error:
            raise CorruptDataError(f"'{path}' is not a NumPy array file ({error})") from None
    images, attrs = arrays
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (28, 28, 3):
        raise CorruptDataError(f"'{directory}/images.npy' holds {images.dtype} {images.shape}; LfF writes uint8 "
                               "(N, 28, 28, 3)")
    if attrs.ndim != 2 or attrs.shape != (len(images), 2):
        raise CorruptDataError(f"'{directory}/attrs.npy' holds shape {attrs.shape}; expected ({len(images)}, 2) "
                               "(digit, colour) for its images")
    labels = torch.from_numpy(attrs.astype(np.int64))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels[:, 0].clone(), labels[:, 1].clone()
