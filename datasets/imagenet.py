"""9-class ImageNet of ReBias (spec §10): 42 ImageNet wnids grouped into 9 super-classes, read from an ImageNet-style
folder ``ROOT/<wnid>/*.JPEG`` (train or val), and ImageNet-A through the same mapping.

Items are ``(x, target, bias, index)``. On the validation set with a texture-cluster CSV (the published
``9class_imagenet_val.csv`` or one written by ``make_clusters.py``) ``bias`` is the LongTensor of the three cluster
labels of the image; elsewhere ``bias = target``.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms

from datasets.image_io import load_rgb
from datasets.mnist_io import DataNotFoundError

SUPER_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dog", ("n02085620", "n02099601", "n02106550", "n02106662", "n02110958")),
    ("cat", ("n02123045", "n02123159", "n02123394", "n02123597", "n02124075")),
    ("frog", ("n01641577", "n01644373", "n01644900")),
    ("turtle", ("n01664065", "n01665541", "n01667114", "n01667778", "n01669191")),
    ("bird", ("n01819313", "n01820546", "n01833805", "n01843383", "n01847000")),
    ("monkey", ("n02486410", "n02487347", "n02488291", "n02488702", "n02492035")),
    ("fish", ("n02607072", "n02640242", "n02641379", "n02643566", "n02655020")),
    ("crab", ("n01978287", "n01978455", "n01980166", "n01981276")),
    ("insect", ("n02174001", "n02177972", "n02190166", "n02206856", "n02219486")),
)
"""(super-class name, its ImageNet wnids); the position is the label (spec §10 table)."""

CLASS_NAMES: tuple[str, ...] = tuple(name for name, _ in SUPER_CLASSES)
WNID_TO_LABEL: dict[str, int] = {wnid: label for label, (_, wnids) in enumerate(SUPER_CLASSES) for wnid in wnids}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_CLUSTERINGS = 3
CLUSTER_CSV_HEADER = ["path", "category"] + [f"cluster{k}" for k in range(1, NUM_CLUSTERINGS + 1)]


def build_transform(train: bool, image_size: int = 224) -> transforms.Compose:
    """Train: RandomResizedCrop + horizontal flip; eval: Resize(256/224 of the size) + CenterCrop; both normalised
    with the ImageNet mean and std (spec §10)."""
    normalise = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return transforms.Compose([transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
                                   *normalise])
    return transforms.Compose([transforms.Resize(round(image_size * 256 / 224)), transforms.CenterCrop(image_size),
                               *normalise])


def find_images(root: str | os.PathLike, require_all_wnids: bool = True) -> tuple[list[tuple[str, int]], list[str]]:
    """The ``(relative path, label)`` of every image of the 42 wnids under ``root``, sorted by path, and the wnids
    that have no folder. Other folders are never read. Missing wnids raise :class:`DataNotFoundError` when
    ``require_all_wnids``; no image at all always does."""
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"image folder '{root}' does not exist (expected ROOT/<wnid>/*.JPEG)")
    missing = sorted(wnid for wnid in WNID_TO_LABEL if not (root / wnid).is_dir())
    if missing and require_all_wnids:
        raise DataNotFoundError(f"'{root}' lacks {len(missing)} of the 42 wnid folders of 9-class ImageNet: "
                                + " ".join(missing))
    items = []
    for wnid in sorted(set(WNID_TO_LABEL) - set(missing)):
        for dirpath, _, filenames in os.walk(root / wnid):
            for filename in filenames:
                if filename.lower().endswith(IMAGE_EXTENSIONS):
                    items.append(((Path(dirpath) / filename).relative_to(root).as_posix(), WNID_TO_LABEL[wnid]))
    if not items:
        raise DataNotFoundError(f"no image of the 42 wnids of 9-class ImageNet found under '{root}'")
    return sorted(items), missing


def read_cluster_csv(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``relative path -> (cluster1, cluster2, cluster3)`` from a CSV ``path,category,cluster1,cluster2,cluster3``."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"texture-cluster CSV '{path}' does not exist (give it with --cluster_csv)")
    with open(path, newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header != CLUSTER_CSV_HEADER:
            raise DataNotFoundError(f"'{path}' is not a texture-cluster CSV: header {header}, expected "
                                    + ",".join(CLUSTER_CSV_HEADER))
        try:
            return {row[0]: tuple(int(value) for value in row[2:]) for row in reader if row}
        except (ValueError, IndexError) as error:
            raise DataNotFoundError(f"'{path}' line {reader.line_num}: malformed row ({error})") from error


def cluster_labels(relative_paths: list[str], csv_path: str | os.PathLike) -> Tensor:
    """(N, 3) LongTensor of the texture clusters of each image, looked up by its path relative to the val root."""
    table = read_cluster_csv(csv_path)
    absent = [path for path in relative_paths if path not in table]
    if absent:
        raise DataNotFoundError(f"{len(absent)} validation images are not in the texture-cluster CSV '{csv_path}' "
                                f"(first: {absent[0]}); the CSV must cover the validation folder")
    return torch.tensor([table[path] for path in relative_paths], dtype=torch.long)


class NineClassImageNet(Dataset):
    """The 9-class subset of an ImageNet-style folder; ``clusters`` = (N, 3) texture labels used as the bias."""

    def __init__(self, root: str | os.PathLike, train: bool, image_size: int = 224,
                 cluster_csv: str | os.PathLike | None = None, require_all_wnids: bool = True):
        self.root = Path(root)
        items, self.missing_wnids = find_images(self.root, require_all_wnids)
        self.paths = [path for path, _ in items]
        self.targets = torch.tensor([label for _, label in items], dtype=torch.long)
        self.clusters = cluster_labels(self.paths, cluster_csv) if cluster_csv is not None else None
        self.transform = build_transform(train, image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor | int, int]:
        x = self.transform(load_rgb(self.root / self.paths[index]))
        target = int(self.targets[index])
        bias = self.clusters[index] if self.clusters is not None else target
        return x, target, bias, index
