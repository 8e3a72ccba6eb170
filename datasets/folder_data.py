"""Your own biased dataset: images in a folder, labels from a table or from file names (``--dataset folder``).

Layouts of ``--data_dir DIR`` (detected from the files present, or forced with ``--layout``):

* ``csv``: ``DIR/metadata.csv`` with columns ``path,split,target[,bias]``; ``path`` relative to DIR, ``split`` one
  of train/valid/test, labels integers or strings; an empty ``bias`` cell (or no ``bias`` column) = unknown.
* ``disent``: DisEnt's file names ``<id>_<target>_<bias>.<ext>`` under ``DIR/{align,conflict}`` (train, aligned
  files first), ``DIR/valid`` and ``DIR/test``, at any depth (datasets/disent_data.py ``parse_labels``).
* ``waterbirds``: Waterbirds' own ``DIR/metadata.csv`` (``img_filename,y,split,place``; split 0/1/2 =
  train/valid/test; target landbird/waterbird, bias land/water).
* ``celeba``: ``DIR/list_attr_celeba.txt`` and ``DIR/list_eval_partition.txt`` (partition 0/1/2), images in
  ``DIR/img_align_celeba`` (or DIR); target and bias are two attributes (``--target_attr Blond_Hair --bias_attr
  Male``, values -1/1 -> ``no_<attr>``/``<attr>``).

Labels are mapped to indices once over all splits (integers in numeric order, strings in sorted order), so a label
has the same index in every split; :attr:`FolderTable.label_names` records the mapping. A bias label may be unknown
(-1) on the train split; on valid and test it is given for every image or for none.

Images are read by :class:`FolderImageDataset` (decoded in DataLoader workers, optionally resized, optionally kept
decoded in a shared-memory :class:`ImageCache`) as uint8 ``(3, H, W)`` tensors; :class:`FolderLoader` turns the
collated uint8 batches into network inputs on the training device (:class:`InputTransform`), and yields the same
``Batch(x, target, bias, index)`` in the same order as :class:`datasets.tensor_loader.TensorLoader` does over the
same images (both draw an epoch's order from ``derived_seed(seed, epoch)``).
"""
from __future__ import annotations

import csv
import json
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.transforms.functional import pil_to_tensor

from datasets.disent_data import CIFAR_MEAN, CIFAR_STD, parse_labels
from datasets.image_io import load_rgb
from datasets.imagenet import IMAGENET_MEAN, IMAGENET_STD
from datasets.loaders import DeviceLoader
from datasets.manifests import IMAGE_SUFFIXES
from datasets.mnist_io import DataNotFoundError
from datasets.tensor_loader import Batch
from utils.config import ConfigError, require

SPLITS = ("train", "valid", "test")
UNKNOWN = -1
"""The bias index of an image whose bias label is not known (train split only)."""
METADATA = "metadata.csv"
CELEBA_ATTRIBUTES = "list_attr_celeba.txt"
CELEBA_PARTITION = "list_eval_partition.txt"
NUMBERED_SPLITS = {"0": "train", "1": "valid", "2": "test"}
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "none": None, "imagenet": (IMAGENET_MEAN, IMAGENET_STD), "cifar": (CIFAR_MEAN, CIFAR_STD)}
"""``--normalize``: network inputs in [0, 1] (none), or standardised with ImageNet's or CIFAR-10's statistics."""
AUGMENTATIONS = ("none", "crop_flip", "resized_crop_flip")
"""``--augment``: none; DisEnt's CIFAR/BFFHQ training augmentation (4-pixel padded random crop, horizontal flip);
the ImageNet one (random resized crop, horizontal flip)."""


@dataclass
class Split:
    """One split: image paths, target indices and bias indices (:data:`UNKNOWN` where not known), int64."""

    paths: list[Path]
    targets: Tensor
    biases: Tensor

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def bias_known(self) -> int:
        """How many images have a known bias label."""
        return int((self.biases != UNKNOWN).sum())

    @property
    def bias_labelled(self) -> bool:
        """Whether every image has a bias label (an empty split counts as labelled)."""
        return self.bias_known == len(self)


@dataclass
class FolderTable:
    """A dataset's three splits and its label names (index -> name)."""

    layout: str
    splits: dict[str, Split]
    target_names: list[str]
    bias_names: list[str]

    def fingerprint(self, root: str | os.PathLike) -> str:
        """sha256 of the layout, the label names and every split's image paths (relative to ``root``) with their
        labels: what a run trained on, whatever folder the dataset sits in now."""
        digest = hashlib.sha256(json.dumps([self.layout, self.target_names, self.bias_names]).encode())
        for name in sorted(self.splits):
            split = self.splits[name]
            for path, target, bias in zip(split.paths, split.targets.tolist(), split.biases.tolist()):
                relative = os.path.relpath(path, root)
                digest.update(f"{name}\t{relative}\t{target}\t{bias}\n".encode())
        return digest.hexdigest()

    @property
    def label_names(self) -> dict[str, dict[str, int]]:
        """The label mapping recorded in results.json: ``{"target": {name: index}, "bias": {name: index}}``."""
        return {"target": {name: i for i, name in enumerate(self.target_names)},
                "bias": {name: i for i, name in enumerate(self.bias_names)}}

    def group_counts(self, split: str) -> Tensor:
        """``(classes, biases)`` image counts of the (target, bias) groups of ``split`` (known biases only)."""
        part = self.splits[split]
        known = part.biases != UNKNOWN
        counts = torch.zeros(len(self.target_names), max(1, len(self.bias_names)), dtype=torch.long)
        counts.index_put_((part.targets[known], part.biases[known]), torch.ones(int(known.sum()), dtype=torch.long),
                          accumulate=True)
        return counts

    def aligned_groups(self) -> dict[int, int]:
        """For each class, its majority bias value (the bias-aligned group) by the counts of the first split among
        train, valid and test that has bias labels; {} when no split has any."""
        for split in SPLITS:
            if self.splits[split].bias_known:
                counts = self.group_counts(split)
                return {target: int(counts[target].argmax()) for target in range(len(self.target_names))}
        return {}

    def summary(self) -> str:
        """Class and group counts per split, printed when a run starts."""
        lines = [f"folder dataset ({self.layout} layout): {len(self.target_names)} classes {self.target_names}, "
                 f"{len(self.bias_names)} bias values {self.bias_names}"]
        for split in SPLITS:
            part = self.splits[split]
            classes = torch.bincount(part.targets, minlength=len(self.target_names)).tolist()
            line = f"  {split}: {len(part)} images, per class {classes}"
            if part.bias_known:
                line += f", per (class, bias) group {self.group_counts(split).tolist()}"
            if not part.bias_labelled:
                line += f", bias unknown for {len(part) - part.bias_known}"
            lines.append(line)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ layouts
Row = tuple[Path, str, "str | None"]
"""(image path, raw target label, raw bias label or None), as read from a layout."""


def _read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of ``path`` as dicts; a short row is refused with its line number."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for line, row in enumerate(rows, start=2):
        require(None not in row.values(), f"'{path}' line {line}: fewer fields than the header's {len(row)}")
    return rows


def _require_columns(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...]) -> None:
    present = set(rows[0]) if rows else set()
    missing = [column for column in columns if column not in present]
    if missing:
        raise ConfigError(f"'{path}' has no column {', '.join(missing)} (columns: {sorted(present)})")


def read_csv_layout(root: Path) -> dict[str, list[Row]]:
    """``metadata.csv`` with ``path,split,target[,bias]``."""
    path = root / METADATA
    rows = _read_csv_rows(path)
    _require_columns(path, rows, ("path", "split", "target"))
    splits: dict[str, list[Row]] = {split: [] for split in SPLITS}
    for line, row in enumerate(rows, start=2):
        split = row["split"].strip()
        require(split in splits, f"'{path}' line {line}: split must be one of {SPLITS}, got {split!r}")
        bias = (row.get("bias") or "").strip() or None
        splits[split].append((root / row["path"].strip(), row["target"].strip(), bias))
    return splits


def read_disent_layout(root: Path) -> dict[str, list[Row]]:
    """DisEnt's ``<id>_<target>_<bias>.<ext>`` names under align/conflict (train), valid and test."""
    folders = {"train": ("align", "conflict"), "valid": ("valid",), "test": ("test",)}
    splits: dict[str, list[Row]] = {}
    for split, names in folders.items():
        files = [file for name in names
                 for file in sorted(p for p in (root / name).rglob("*")
                                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)]
        rows = []
        for file in files:
            try:
                target, bias = parse_labels(file)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            rows.append((file, str(target), str(bias)))
        splits[split] = rows
    return splits


WATERBIRDS_NAMES = {"target": ["landbird", "waterbird"], "bias": ["land", "water"]}


def read_waterbirds_layout(root: Path) -> dict[str, list[Row]]:
    """Waterbirds' ``metadata.csv`` (``img_filename,y,split,place``, split 0/1/2)."""
    path = root / METADATA
    rows = _read_csv_rows(path)
    _require_columns(path, rows, ("img_filename", "y", "split", "place"))
    splits: dict[str, list[Row]] = {split: [] for split in SPLITS}
    for line, row in enumerate(rows, start=2):
        split = NUMBERED_SPLITS.get(row["split"].strip())
        require(split is not None, f"'{path}' line {line}: split must be 0, 1 or 2, got {row['split']!r}")
        target, bias = row["y"].strip(), row["place"].strip()
        for value in (target, bias):
            require(value in ("0", "1"), f"'{path}' line {line}: y and place must be 0 or 1, got {value!r}")
        splits[split].append((root / row["img_filename"].strip(), WATERBIRDS_NAMES["target"][int(target)],
                              WATERBIRDS_NAMES["bias"][int(bias)]))
    return splits


def read_celeba_layout(root: Path, target_attr: str, bias_attr: str) -> dict[str, list[Row]]:
    """CelebA's attribute and partition lists; images in ``img_align_celeba/`` (or the folder itself)."""
    attributes_path, partition_path = root / CELEBA_ATTRIBUTES, root / CELEBA_PARTITION
    for needed in (attributes_path, partition_path):
        if not needed.is_file():
            raise DataNotFoundError(f"'{needed}' not found: the celeba layout needs {CELEBA_ATTRIBUTES} and "
                                    f"{CELEBA_PARTITION}")
    lines = attributes_path.read_text().splitlines()
    require(len(lines) >= 2, f"'{attributes_path}' is too short: expected a count line and an attribute line")
    names = lines[1].split()
    for flag, attr in (("target_attr", target_attr), ("bias_attr", bias_attr)):
        require(attr in names, f"--{flag} {attr!r} is not an attribute of '{attributes_path}' (attributes: {names})")
    columns = names.index(target_attr), names.index(bias_attr)
    partition = {}
    for number, line in enumerate(partition_path.read_text().splitlines(), start=1):
        if line.strip():
            fields = line.split()
            require(len(fields) >= 2, f"'{partition_path}' line {number}: expected an image name and 0, 1 or 2")
            partition[fields[0]] = fields[1]
    images = root / "img_align_celeba" if (root / "img_align_celeba").is_dir() else root
    splits: dict[str, list[Row]] = {split: [] for split in SPLITS}
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        require(len(fields) == len(names) + 1, f"'{attributes_path}' line {number}: expected {len(names) + 1} fields")
        split = NUMBERED_SPLITS.get(partition.get(fields[0], ""))
        require(split is not None, f"'{partition_path}' gives no partition 0/1/2 for '{fields[0]}'")
        labels = []
        for attr, column in zip((target_attr, bias_attr), columns):
            value = fields[column + 1]
            require(value in ("-1", "1"), f"'{attributes_path}' line {number}: {attr} must be -1 or 1, got {value!r}")
            labels.append(attr if value == "1" else f"no_{attr}")
        splits[split].append((images / fields[0], labels[0], labels[1]))
    return splits


LAYOUTS = ("csv", "disent", "waterbirds", "celeba")


def detect_layout(root: Path) -> str:
    """The layout of ``root`` from the files present (module docstring)."""
    if (root / CELEBA_ATTRIBUTES).exists():
        return "celeba"
    if (root / METADATA).exists():
        with open(root / METADATA, newline="") as handle:
            header = next(csv.reader(handle), [])
        return "waterbirds" if {"img_filename", "y", "place"} <= set(header) else "csv"
    if (root / "align").is_dir() and (root / "conflict").is_dir():
        return "disent"
    raise DataNotFoundError(f"'{root}' holds no dataset in a known layout: expected {METADATA} (columns "
                            f"path,split,target,bias, or Waterbirds' img_filename,y,split,place), DisEnt's "
                            f"align/conflict/valid/test folders, or CelebA's {CELEBA_ATTRIBUTES} (see "
                            f"datasets/folder_data.py)")


def _is_integer(value: str) -> bool:
    try:
        return str(int(value)) == value
    except ValueError:
        return False


def _label_names(values: set[str]) -> list[str]:
    """Sorted label names: numerically when every label is an integer, else as strings."""
    if all(_is_integer(value) for value in values):
        return [str(number) for number in sorted(int(value) for value in values)]
    return sorted(values)


def _encode(layout: str, rows: dict[str, list[Row]]) -> FolderTable:
    """Map raw labels to indices consistently over all splits."""
    target_names = _label_names({target for split in rows.values() for _, target, _ in split})
    bias_names = _label_names({bias for split in rows.values() for *_, bias in split if bias is not None})
    if layout == "waterbirds":
        target_names, bias_names = WATERBIRDS_NAMES["target"], WATERBIRDS_NAMES["bias"]
    target_index = {name: i for i, name in enumerate(target_names)}
    bias_index = {name: i for i, name in enumerate(bias_names)}
    splits = {}
    for split, split_rows in rows.items():
        splits[split] = Split([path for path, _, _ in split_rows],
                              torch.tensor([target_index[t] for _, t, _ in split_rows], dtype=torch.long),
                              torch.tensor([UNKNOWN if b is None else bias_index[b] for *_, b in split_rows],
                                           dtype=torch.long))
    return FolderTable(layout, splits, target_names, bias_names)


def read_folder(root: str | os.PathLike, layout: str | None = None, target_attr: str | None = None,
                bias_attr: str | None = None, check_files: bool = True) -> FolderTable:
    """The dataset under ``root`` in ``layout`` (detected when None); ``target_attr``/``bias_attr`` for CelebA.
    ``check_files``: refuse (one line) when listed images do not exist."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"--data_dir '{root}' is not a folder")
    layout = layout or detect_layout(root)
    require(layout in LAYOUTS, f"--layout must be one of {LAYOUTS}, got {layout!r}")
    attrs_given = [flag for flag, value in (("target_attr", target_attr), ("bias_attr", bias_attr)) if value]
    require(layout == "celeba" or not attrs_given,
            f"--{attrs_given[0] if attrs_given else ''} is read by the celeba layout only (this is {layout})")
    if layout == "celeba":
        rows = read_celeba_layout(root, target_attr or "Blond_Hair", bias_attr or "Male")
    else:
        readers: dict[str, Callable[[Path], dict[str, list[Row]]]] = {
            "csv": read_csv_layout, "disent": read_disent_layout, "waterbirds": read_waterbirds_layout}
        rows = readers[layout](root)
    if check_files:
        missing = [path for split in rows.values() for path, _, _ in split if not path.is_file()]
        if missing:
            raise DataNotFoundError(f"{len(missing)} listed image(s) not found under '{root}', e.g. '{missing[0]}'")
    return _encode(layout, rows)


# ------------------------------------------------------------------------------------------------ images
def image_size_of(table: FolderTable, image_size: int | None) -> int:
    """The side of the square images the loaders yield: ``--image_size``, or that of the first training image
    (then every image must have that size, checked when it is decoded)."""
    if image_size is not None:
        return image_size
    width, height = load_rgb(table.splits["train"].paths[0]).size
    require(width == height, f"'{table.splits['train'].paths[0]}' is {width}x{height}: pass --image_size to resize "
                             "every image to a square")
    return width


def decode(path: Path, size: int, resize: bool) -> Tensor:
    """The image at ``path`` as uint8 ``(3, size, size)``: resized when ``resize``, else it must have that size."""
    image = load_rgb(path)
    if resize and image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    elif image.size != (size, size):
        raise ConfigError(f"'{path}' is {image.size[0]}x{image.size[1]}, not {size}x{size} as the first training "
                          "image: pass --image_size to resize every image")
    return pil_to_tensor(image)


class ImageCache:
    """Decoded uint8 images of one split in shared memory, filled as images are first decoded: DataLoader workers
    (forked) write into the same storage, so from the second epoch on nothing is decoded."""

    def __init__(self, count: int, size: int):
        self.images = torch.zeros(count, 3, size, size, dtype=torch.uint8).share_memory_()
        self.filled = torch.zeros(count, dtype=torch.bool).share_memory_()

    def get(self, index: int, load: Callable[[], Tensor]) -> Tensor:
        if not bool(self.filled[index]):
            self.images[index] = load()
            self.filled[index] = True
        return self.images[index]


def build_augmentation(augment: str, size: int) -> Callable[[Tensor], Tensor] | None:
    """``--augment`` on uint8 ``(3, size, size)`` tensors (:data:`AUGMENTATIONS`); None for ``none``."""
    require(augment in AUGMENTATIONS, f"--augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if augment == "crop_flip":
        return T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()])
    if augment == "resized_crop_flip":
        return T.Compose([T.RandomResizedCrop(size, antialias=True), T.RandomHorizontalFlip()])
    return None


class FolderImageDataset(Dataset):
    """Items ``(uint8 image (3, S, S), target, bias, index)`` of one split, decoded on demand (in the DataLoader's
    workers), resized to S when ``resize``, read from ``cache`` once decoded, then augmented."""

    def __init__(self, split: Split, size: int, resize: bool, augment: Callable[[Tensor], Tensor] | None = None,
                 cache: ImageCache | None = None):
        self.split, self.size, self.resize, self.augment, self.cache = split, size, resize, augment, cache

    def __len__(self) -> int:
        return len(self.split)

    def decoded(self, index: int) -> Tensor:
        path = self.split.paths[index]
        if self.cache is None:
            return decode(path, self.size, self.resize)
        return self.cache.get(index, lambda: decode(path, self.size, self.resize))

    def __getitem__(self, index: int) -> tuple[Tensor, int, int, int]:
        image = self.decoded(index)
        if self.augment is not None:
            image = self.augment(image)
        return image, int(self.split.targets[index]), int(self.split.biases[index]), index


def decode_all(dataset: FolderImageDataset) -> Tensor:
    """Every image of a dataset, decoded once, as uint8 ``(N, 3, S, S)`` (``--preload``)."""
    return torch.stack([dataset.decoded(index) for index in range(len(dataset))])


class InputTransform:
    """uint8 images -> float network inputs on their device: ``/255``, then standardised (``--normalize``)."""

    def __init__(self, normalize: str):
        require(normalize in NORMALISATIONS, f"--normalize must be one of {list(NORMALISATIONS)}, got {normalize!r}")
        self.statistics = NORMALISATIONS[normalize]

    def __call__(self, images: Tensor) -> Tensor:
        x = images.float().div_(255.0)
        if self.statistics is None:
            return x
        mean, std = (torch.tensor(values, device=x.device).view(1, -1, 1, 1) for values in self.statistics)
        return x.sub_(mean).div_(std)


class FolderLoader:
    """A :class:`datasets.loaders.DeviceLoader` (workers, epoch-seeded order) whose uint8 batches become network
    inputs on the device; the same batches as a TensorLoader over the same images, seed and batch size."""

    def __init__(self, dataset: FolderImageDataset, batch_size: int, shuffle: bool, device: torch.device,
                 transform: Callable[[Tensor], Tensor], seed: int = 0, num_workers: int = 0, drop_last: bool = False):
        self.loader = DeviceLoader(dataset, batch_size, shuffle, device, seed=seed, num_workers=num_workers,
                                   drop_last=drop_last)
        self.transform = transform

    @property
    def dataset_size(self) -> int:
        return len(self.loader.dataset)

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        return self._transformed(iter(self.loader))

    def sample(self, num_batches: int) -> Iterator[Batch]:
        return self._transformed(self.loader.sample(num_batches))

    def _transformed(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        for batch in batches:
            yield batch._replace(x=self.transform(batch.x))
