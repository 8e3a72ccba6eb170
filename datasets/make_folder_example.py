"""Write the worked example's biased datasets as a folder of images plus ``metadata.csv`` (docs/own_dataset.md).

    python -m datasets.make_folder_example [cmnist] --out data/folder_cmnist [--mnist_root ../shared/data]
        [--percent 5] [--limit 4000] [--n_valid 1000] [--seed 0]
    python -m datasets.make_folder_example textures --out data/folder_textures [--n_train 2000] [--n_valid 500]
        [--n_test 800] [--conflicting 0.05] [--size 32] [--seed 0]

``cmnist``: Colored MNIST made by the project's generator (``datasets.make_disent_data cmnist``, LfF's protocol:
digit colour = bias, ``percent`` % bias-conflicting training images, valid at the training ratio, test 90 %
conflicting) from the first ``limit`` images of each MNIST split, under ``OUT/images``, listed in ``OUT/metadata.csv``
(``path,split,target,bias``, integer labels).

``textures``: a shape on a textured background. The target is the shape (circle, square, triangle, cross), the bias
the background texture (hstripes, vstripes, checker, dots); in train and valid a share ``conflicting`` of the images
has a texture other than its shape's own, in test every (shape, texture) group is equally frequent. String labels.
Images and metadata are deterministic for a seed.
"""
from __future__ import annotations

import csv
import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datasets.disent_data import parse_labels
from datasets.folder_data import METADATA
from datasets.make_disent_data import cmnist as make_disent_cmnist
from datasets.mnist_io import CorruptDataError, DataNotFoundError
from utils.config import build_config, require, require_writable_dir, run_cli

SHAPES = ("circle", "square", "triangle", "cross")
TEXTURES = ("hstripes", "vstripes", "checker", "dots")
DISENT_SPLITS = {"train": ("align", "conflict"), "valid": ("valid",)}


def _require_out(out: str | None) -> None:
    require(out is not None, "--out is required: the folder to write the images and metadata.csv into")
    require(not (Path(out) / METADATA).exists(), f"'{Path(out) / METADATA}' exists: choose another --out or remove it")


def write_metadata(out: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """``out/metadata.csv`` with ``path,split,target,bias`` rows."""
    path = out / METADATA
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "split", "target", "bias"])
        writer.writerows(rows)
    return path


def cmnist(out: str | None = None, mnist_root: str = "../shared/data", percent: float = 5.0, limit: int = 4000,
           n_valid: int = 1000, seed: int = 0) -> str:
    """Colored MNIST as images + metadata.csv (module docstring); returns ``out``."""
    _require_out(out)
    require_writable_dir(out, f"--out {out}")
    root = Path(out)
    with tempfile.TemporaryDirectory() as scratch:
        made = Path(make_disent_cmnist(mnist_root=mnist_root, out=scratch, percents=[percent], seed=seed,
                                       n_valid=n_valid, limit=limit))
        group = next(path for path in made.iterdir() if path.name != "test")
        folders = {split: [group / name for name in names] for split, names in DISENT_SPLITS.items()}
        folders["test"] = [made / "test"]
        rows = []
        for split, sources in folders.items():
            for source in sources:
                for file in sorted(source.rglob("*.png")):
                    relative = Path("images") / split / file.name
                    (root / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(file, root / relative)
                    target, bias = parse_labels(file)
                    rows.append((relative.as_posix(), split, str(target), str(bias)))
    write_metadata(root, rows)
    return str(root)


def _shape_mask(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of ``shape`` at a random centre and scale."""
    y, x = np.mgrid[:size, :size].astype(np.float64)
    radius = size * rng.uniform(0.22, 0.32)
    cy, cx = (size / 2 + rng.uniform(-0.1, 0.1, 2) * size)
    dy, dx = y - cy, x - cx
    if shape == "circle":
        return dy ** 2 + dx ** 2 <= radius ** 2
    if shape == "square":
        return (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
    if shape == "triangle":
        return (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
    bar = (np.abs(dy) <= radius * 0.3) | (np.abs(dx) <= radius * 0.3)
    return bar & (np.abs(dy) <= radius) & (np.abs(dx) <= radius)


def _texture(texture: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean pattern of ``texture`` with a random phase and period."""
    y, x = np.mgrid[:size, :size]
    period = int(rng.integers(3, 6))
    phase = int(rng.integers(0, period))
    if texture == "hstripes":
        return (y + phase) % period < period / 2
    if texture == "vstripes":
        return (x + phase) % period < period / 2
    if texture == "checker":
        return ((y + phase) // period + (x + phase) // period) % 2 == 0
    return ((y + phase) % period == 0) & ((x + phase) % period == 0)


def render_texture_image(shape: str, texture: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """``uint8 (size, size, 3)``: a white-ish shape on a two-tone grey textured background."""
    light, dark = rng.uniform(150, 190), rng.uniform(40, 80)
    image = np.where(_texture(texture, size, rng), light, dark)
    image = np.where(_shape_mask(shape, size, rng), rng.uniform(230, 255), image)
    image = image + rng.normal(0, 6, image.shape)
    return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def texture_labels(count: int, conflicting: float | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Balanced shapes; textures aligned with the shape except for a ``conflicting`` share (another texture drawn
    uniformly), or uniform over every group when ``conflicting`` is None."""
    targets = np.arange(count) % len(SHAPES)
    if conflicting is None:
        biases = (np.arange(count) // len(SHAPES)) % len(TEXTURES)
    else:
        shifted = rng.random(count) < conflicting
        biases = np.where(shifted, (targets + rng.integers(1, len(TEXTURES), count)) % len(TEXTURES), targets)
    order = rng.permutation(count)
    return targets[order], biases[order]


def textures(out: str | None = None, n_train: int = 2000, n_valid: int = 500, n_test: int = 800,
             conflicting: float = 0.05, size: int = 32, seed: int = 0) -> str:
    """The shape-on-texture toy as images + metadata.csv (module docstring); returns ``out``."""
    for flag, value in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test), ("size", size)):
        require(isinstance(value, int) and value >= 1, f"--{flag} must be a positive integer, got {value!r}")
    require(0 <= conflicting <= 1, f"--conflicting must lie in [0, 1], got {conflicting}")
    _require_out(out)
    require_writable_dir(out, f"--out {out}")
    root = Path(out)
    rows = []
    for stream, (split, count, share) in enumerate((("train", n_train, conflicting), ("valid", n_valid, conflicting),
                                                    ("test", n_test, None))):
        rng = np.random.default_rng([seed, stream])
        targets, biases = texture_labels(count, share, rng)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for index, (target, bias) in enumerate(zip(targets, biases)):
            relative = f"images/{split}/{index:05d}.png"
            image = render_texture_image(SHAPES[target], TEXTURES[bias], size, rng)
            Image.fromarray(image).save(root / relative)
            rows.append((relative, split, SHAPES[target], TEXTURES[bias]))
    write_metadata(root, rows)
    return str(root)


GENERATORS = {"cmnist": cmnist, "textures": textures}


def main(dataset: str = "cmnist", **flags: Any) -> None:
    """``cmnist`` (default) or ``textures`` with its flags; prints the dataset's folder."""
    require(dataset in GENERATORS, f"the first argument must be one of {sorted(GENERATORS)}, got {dataset!r}")
    generator = GENERATORS[dataset]
    defaults = {name: parameter.default for name, parameter in inspect.signature(generator).parameters.items()}
    print(generator(**build_config(defaults, flags)))


if __name__ == "__main__":
    run_cli(main, user_errors=(DataNotFoundError, CorruptDataError, FileExistsError))
