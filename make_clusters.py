"""Texture clusters of the 9-class ImageNet validation set (ReBias spec §10, ``make_clusters.py``).

    python make_clusters.py --val_root IN/val --out clusters/9class_imagenet_val.csv [--weights vgg16.pth]

Per image (eval transform: Resize 256, CenterCrop 224): the conv3_3 activations F (C x HW, before its ReLU) of an
ImageNet-pretrained VGG16 give the Gram matrix G = F F^T / (C H W); G is flattened and L2-normalised, and
MiniBatchKMeans (k = 9, batch size 1024) clusters the images, three times with random states seed, seed+1, seed+2.
The CSV has the published format ``path,category,cluster1,cluster2,cluster3``, sorted by path.

Pretrained weights cannot be downloaded here: ``--weights PATH`` (torchvision's ``vgg16-397923af.pth``), else the
file in torch's hub cache, else a one-line error. ``--random_weights`` uses an untrained VGG16 (for tests only).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import MiniBatchKMeans
from torch import Tensor, nn
from torchvision.models.vgg import cfgs, make_layers
from tqdm import tqdm

from datasets.imagenet import CLASS_NAMES, CLUSTER_CSV_HEADER, NUM_CLUSTERINGS, NineClassImageNet
from datasets.loaders import DeviceLoader
from datasets.mnist_io import DataNotFoundError
from experiment import resolve_device
from utils.config import ConfigError, build_config, require, run_cli
from utils.io import CheckpointError, safe_torch_load

VGG16_WEIGHTS_FILE = "vgg16-397923af.pth"
CONV3_3_END = 15
"""``vgg16().features[:15]`` ends with conv3_3, before its ReLU (the original's ``features[:-16]``)."""


def default_weights_path() -> Path:
    """Where torchvision caches the ImageNet VGG16 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_WEIGHTS_FILE


def conv3_3_extractor(weights: str | None = None, random_weights: bool = False) -> nn.Module:
    """VGG16 ``features[:15]`` with ImageNet weights from ``weights`` or the hub cache (or untrained); the
    classifier of VGG16 is never built."""
    features = make_layers(cfgs["D"])
    if not random_weights:
        path = Path(weights) if weights is not None else default_weights_path()
        if not path.is_file():
            raise DataNotFoundError(
                f"VGG16 ImageNet weights not found at '{path}': download {VGG16_WEIGHTS_FILE} from "
                "https://download.pytorch.org/models/ on a machine with network access and pass --weights PATH "
                f"(or copy it to {default_weights_path()})")
        state = safe_torch_load(path)
        features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()
                                  if key.startswith("features.")})
    return features[:CONV3_3_END].eval()


def gram_descriptors(feature_maps: Tensor) -> Tensor:
    """Flattened Gram matrices ``F F^T / (C H W)`` of (N, C, H, W) maps, L2-normalised per image."""
    n, channels, height, width = feature_maps.shape
    flat = feature_maps.reshape(n, channels, height * width).float()
    gram = torch.bmm(flat, flat.transpose(1, 2)) / (channels * height * width)
    return F.normalize(gram.reshape(n, -1), dim=1)


def cluster(descriptors: np.ndarray, k: int, seeds: list[int]) -> list[np.ndarray]:
    """One MiniBatchKMeans(k, batch_size=1024) labelling of the descriptors per random state (n_init=3, the
    scikit-learn default the original ran with)."""
    return [MiniBatchKMeans(n_clusters=k, batch_size=1024, random_state=seed, n_init=3).fit_predict(descriptors)
            for seed in seeds]


def write_cluster_csv(path: str | Path, paths: list[str], targets: list[int], labellings: list[np.ndarray]) -> None:
    """``path,category,cluster1,...`` rows sorted by path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(zip(paths, targets, *labellings))
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CLUSTER_CSV_HEADER[:2] + [f"cluster{k}" for k in range(1, len(labellings) + 1)])
        for relative_path, target, *labels in rows:
            writer.writerow([relative_path, CLASS_NAMES[target], *(int(label) for label in labels)])


DEFAULTS: dict[str, Any] = {
    "val_root": None,
    "out": "clusters/9class_imagenet_val.csv",
    "weights": None,
    "random_weights": False,
    "k": 9,
    "seed": 0,
    "batch_size": 64,
    "num_workers": 4,
    "image_size": 224,
    "device": None,
    "progress": True,
}


@torch.no_grad()
def main(**flags: Any) -> None:
    """Write the texture-cluster CSV of ``--val_root``; see the module docstring for the method."""
    config = build_config(DEFAULTS, flags)
    require(config.val_root is not None, "--val_root is required: the ImageNet val folder (ROOT/<wnid>/*.JPEG)")
    require(config.k >= 2, f"--k must be at least 2, got {config.k}")
    require(config.batch_size >= 1, f"--batch_size must be at least 1, got {config.batch_size}")
    require(config.image_size >= 32, f"--image_size must be at least 32, got {config.image_size}")
    device = resolve_device(config.device)
    extractor = conv3_3_extractor(config.weights, config.random_weights).to(device)
    dataset = NineClassImageNet(config.val_root, train=False, image_size=config.image_size)
    require(len(dataset) >= config.k, f"--k {config.k} needs at least {config.k} images, found {len(dataset)}")
    loader = DeviceLoader(dataset, config.batch_size, shuffle=False, device=device, num_workers=config.num_workers)
    descriptors = np.zeros((len(dataset), 256 * 256), dtype=np.float32)
    for batch in tqdm(loader, desc="Gram descriptors", unit="batch", disable=not config.progress):
        descriptors[batch.index.cpu().numpy()] = gram_descriptors(extractor(batch.x)).cpu().numpy()
    labellings = cluster(descriptors, config.k, [config.seed + offset for offset in range(NUM_CLUSTERINGS)])
    write_cluster_csv(config.out, dataset.paths, dataset.targets.tolist(), labellings)
    sizes = "; ".join(" ".join(str(n) for n in np.bincount(labels, minlength=config.k)) for labels in labellings)
    print(f"wrote {config.out}: {len(dataset)} images, {NUM_CLUSTERINGS} clusterings with k={config.k} "
          f"(cluster sizes: {sizes})")


if __name__ == "__main__":
    run_cli(main, user_errors=(DataNotFoundError, ConfigError, CheckpointError))
