"""Reading MNIST from torchvision's on-disk layout (``<root>/MNIST/raw/*-idx?-ubyte``) without a network."""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing and cannot be downloaded; the message says where to put it."""


class CorruptDataError(ValueError):
    """A dataset file exists but is truncated or not in its format; the message names the file."""


def _raw_dir(root: str | os.PathLike) -> Path:
    root = Path(root)
    for candidate in (root / "MNIST" / "raw", root / "raw", root):
        if (candidate / MNIST_FILES[True][0]).exists() or (candidate / (MNIST_FILES[True][0] + ".gz")).exists():
            return candidate
    return root / "MNIST" / "raw"


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file as an array; a damaged file raises :class:`CorruptDataError` naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:  # a truncated .gz raises EOFError, a damaged one BadGzipFile (OSError)
        raise CorruptDataError(f"'{path}' cannot be read ({error}): replace it with the original MNIST file") from None
    magic = int.from_bytes(data[0:4], "big") if len(data) >= 4 else 0
    if magic >> 8 != 0x08:
        raise CorruptDataError(f"'{path}' is not an unsigned-byte IDX file (magic {magic:#x}): replace it with the "
                               f"original MNIST file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) < header or len(data) != expected:
        raise CorruptDataError(f"'{path}' is truncated or padded: {len(data)} bytes, its header announces shape "
                               f"{shape}, i.e. {expected} bytes; replace it with the original MNIST file")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _try_download(root: Path) -> bool:
    """Download MNIST through torchvision into a temporary folder and move its raw files to ``root/MNIST/raw``;
    nothing is created under ``root`` unless the download succeeds."""
    try:
        from torchvision.datasets import MNIST

        with tempfile.TemporaryDirectory(prefix="mnist-download-") as staging:
            MNIST(staging, train=True, download=True)
            MNIST(staging, train=False, download=True)
            raw = root / "MNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for downloaded in (Path(staging) / "MNIST" / "raw").iterdir():
                shutil.move(str(downloaded), raw / downloaded.name)
        return True
    except Exception:  # noqa: BLE001 - any network failure means "not downloadable here"
        return False


def load_mnist(root: str | os.PathLike, train: bool, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return MNIST ``(images uint8 (N, 28, 28), labels int64 (N,))`` read from ``root``.

    ``root`` may be torchvision's root (holding ``MNIST/raw``), the ``MNIST`` folder or the ``raw`` folder itself.
    When the files are absent, a download through torchvision is tried once; without a network a
    :class:`DataNotFoundError` says where the four IDX files must go.
    """
    raw = _raw_dir(root)
    images_name, labels_name = MNIST_FILES[train]

    def locate(name: str) -> Path | None:
        for candidate in (raw / name, raw / (name + ".gz")):
            if candidate.exists():
                return candidate
        return None

    if (locate(images_name) is None or locate(labels_name) is None) and download:
        _try_download(Path(root))
        raw = _raw_dir(root)
    images_path, labels_path = locate(images_name), locate(labels_name)
    if images_path is None or labels_path is None:
        raise DataNotFoundError(
            f"MNIST not found under '{root}' and it could not be downloaded: put the four IDX files "
            f"({', '.join(MNIST_FILES[True] + MNIST_FILES[False])}) in '{Path(root) / 'MNIST' / 'raw'}'"
        )
    images = torch.from_numpy(_read_idx(images_path).copy())
    labels = torch.from_numpy(_read_idx(labels_path).astype(np.int64))
    if images.shape[0] != labels.shape[0]:
        raise CorruptDataError(f"MNIST files under '{raw}' disagree: {images.shape[0]} images, "
                               f"{labels.shape[0]} labels")
    return images, labels


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (used by tests to fake MNIST in the real on-disk format)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    Path(path).write_bytes(header + array.tobytes())
