"""Generate DisEnt's Colored MNIST and Corrupted CIFAR-10 (type0) folders with LfF's protocols (spec §3.1, §3.6).

    python -m datasets.make_disent_data cmnist --mnist_root ROOT --out OUT [--percents 0.5,1,2,5] [--seed 0]
        [--palette hues|lff] [--render lff|disent_figure] [--colors_path PATH] [--severity 4] [--n_valid 5000]
        [--limit N]
    python -m datasets.make_disent_data cmnist --mnist_root ROOT --out OUT --preset lff_paper   (LfF's own data)
    python -m datasets.make_disent_data cifar10c --cifar_root ROOT --frost_dir DIR --out OUT [same options]
    python -m datasets.make_disent_data from_lff --lff_dir LFF_DATA_DIR --out OUT --percent 1 [--severity 4]
        (LfF's own ColoredMNIST-Skewed<r>-Severity<s>/{train,valid}/{images,attrs}.npy, datasets/lff_npy.py,
        converted into this layout: the same images and labels, LfF's valid as test, no valid split)

Layout written under ``OUT`` (``OUT`` is DisEnt's ``--data_dir``)::

    OUT/<name>/<pct>/align/<target>/<idx>_<target>_<bias>.png      train, bias-aligned
    OUT/<name>/<pct>/conflict/<target>/<idx>_<target>_<bias>.png   train, bias-conflicting
    OUT/<name>/<pct>/valid/<idx>_<target>_<bias>.png               cmnist (flat); cifar10c: valid/<target>/...;
                                                                   absent when n_valid is 0
    OUT/<name>/<pct>/manifest.json
    OUT/<name>/test/<target>/<idx>_<target>_<bias>.png             unbiased test, shared by all ratios
    OUT/<name>/test/manifest.json

``idx`` is the image's index in the source split (torchvision order). The source train split is cut once per seed
into train and ``n_valid`` valid images (a seeded uniform draw, identical for every ratio); bias labels are then
assigned with LfF's deterministic protocol separately in the train and valid parts (aligned ratio ``1 - pct/100``,
so valid has the training ratio, as DisEnt's authors describe) and in the source test split (aligned ratio 0.1).
With ``n_valid`` 0 the whole source train split is the training set and there is no valid split: LfF's own protocol,
whose only evaluation split is the unbiased test split (``--preset lff_paper``: LfF palette and renderer, n_valid 0).
Colour noise and corruptions draw from generators seeded by ``(seed, split, ratio)``, so the same seed gives
byte-identical files. Each manifest records counts and a sha256 per split, the seed, the generator version, the
settings (Colored MNIST: palette, renderer, noise, n_valid) and its own digest (datasets/manifests.py); train_disent.py
and test.py verify the data against it and check the settings against their flags.

Every flag is checked before any work (unknown flags, wrong types, a percentage other than those train_disent.py
accepts, ``--n_valid`` not below ``--limit``, a missing source, an ``--out`` that cannot be written): one line
``error: ...`` and exit code 2.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from datasets.lff_protocols import (CIFAR10C_SEVERITIES, COLOUR_NOISE_STD, DEFAULT_PALETTE, DEFAULT_RENDERER,
                                    DEFAULT_SEVERITY, NUM_CLASSES, PALETTES, PERCENTS, RENDERERS, TEST_ALIGNED_RATIO,
                                    TYPE0_CORRUPTIONS, aligned_ratio, colour_noise_std, corrupt_type0,
                                    corruption_level, make_attr_labels, palette_colours, percent_dirname,
                                    render_digits)
from datasets.corruptions import resolve_frost_dir
from datasets.lff_npy import lff_folder, read_lff_split
from datasets.manifests import DIGEST_KEY, MANIFEST_NAME, VERDICT_NAME, manifest_digest, split_digest
from datasets.mnist_io import CorruptDataError, DataNotFoundError, load_mnist
from utils.config import ConfigError, build_config, require, require_writable_dir, run_cli

GENERATOR_VERSION = "disent-data/2"
"""2: manifests record their own digest (``manifest_sha256``)."""
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
STREAM_VALID_SPLIT, STREAM_TRAIN, STREAM_VALID, STREAM_TEST = range(4)

Renderer = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def parse_percents(percents: float | str | Iterable[float | str]) -> list[float]:
    """``'0.5,1,2,5'``, ``(0.5, 1, 2, 5)`` (fire's parse of that string) or a single number -> list of floats, each
    one of :data:`datasets.lff_protocols.PERCENTS` (the ratios train_disent.py accepts), else :class:`ConfigError`."""
    if isinstance(percents, str):
        items: Iterable[float | str] = [p for p in percents.split(",") if p.strip()]
    elif isinstance(percents, Iterable):
        items = percents
    else:
        items = [percents]
    expected = f"one or more of {', '.join(f'{p:g}' for p in PERCENTS)} (comma-separated), got {percents!r}"
    try:
        values = [float(str(p).strip().removesuffix("pct")) for p in items]
    except ValueError:
        raise ConfigError(f"--percents expects {expected}") from None
    require(bool(values) and all(value in PERCENTS for value in values), f"--percents expects {expected}")
    return values


def _ratio_code(percent: float) -> int:
    return int(round(percent * 100))


def split_train_valid(num_samples: int, n_valid: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted source indices of the train part and of the ``n_valid`` randomly drawn valid images."""
    if not 0 <= n_valid < num_samples:
        raise ValueError(f"n_valid must lie in [0, {num_samples}), got {n_valid}")
    valid = np.sort(rng.choice(num_samples, size=n_valid, replace=False))
    train = np.setdiff1d(np.arange(num_samples), valid)
    return train, valid


def encode_png(image: np.ndarray) -> bytes:
    """Deterministic PNG encoding of a uint8 HxWx3 image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _refuse_foreign_directories(root: Path, groups: Iterable[str]) -> None:
    """Refuse (before any work) to write into a non-empty folder that this generator did not write."""
    for directory in (root / "test", *(root / group for group in groups)):
        if directory.exists() and any(directory.iterdir()) and not (directory / MANIFEST_NAME).exists():
            raise FileExistsError(f"'{directory}' exists, is not empty and has no {MANIFEST_NAME} from this generator; "
                                  f"remove it or choose another --out")


def _prepare_directory(directory: Path, owned: Iterable[str]) -> None:
    """Remove a previous generation's split folders, manifest and verdict cache (see
    :func:`_refuse_foreign_directories`)."""
    if directory.exists():
        for name in (*owned, MANIFEST_NAME, VERDICT_NAME):
            path = directory / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    directory.mkdir(parents=True, exist_ok=True)


def write_images(directory: Path, images: np.ndarray, targets: np.ndarray, biases: np.ndarray,
                 source_indices: np.ndarray, nested: bool, description: str) -> dict[str, Any]:
    """Write ``<idx>_<target>_<bias>.png`` files (under ``<target>/`` when ``nested``); return counts and sha256
    (:func:`datasets.manifests.split_digest`)."""
    file_digests = []
    for image, target, bias, index in tqdm(zip(images, targets, biases, source_indices), total=len(images),
                                           desc=description, unit="img", leave=False):
        name = f"{int(index)}_{int(target)}_{int(bias)}.png"
        relative = f"{int(target)}/{name}" if nested else name
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encode_png(image)
        path.write_bytes(data)
        file_digests.append((relative, hashlib.sha256(data).hexdigest()))
    targets = np.asarray(targets, dtype=np.int64)
    biases = np.asarray(biases, dtype=np.int64)
    return {
        "count": int(len(images)),
        "aligned": int((targets == biases).sum()),
        "conflicting": int((targets != biases).sum()),
        "per_target": np.bincount(targets, minlength=NUM_CLASSES).tolist(),
        "sha256": split_digest(file_digests),
    }


def _write_manifest(directory: Path, content: dict[str, Any]) -> None:
    """The manifest with its own digest (:func:`datasets.manifests.manifest_digest`)."""
    content = {**content, DIGEST_KEY: manifest_digest(content)}
    (directory / MANIFEST_NAME).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")


def generate(name: str, train_images: np.ndarray, train_targets: np.ndarray, test_images: np.ndarray,
             test_targets: np.ndarray, render: Renderer, out: str | os.PathLike, percents: list[float], seed: int,
             n_valid: int, nested_valid: bool, settings: dict[str, Any]) -> Path:
    """Write the shared unbiased test split and one folder per ratio for dataset ``name``; return ``OUT/name``."""
    root = Path(out) / name
    _refuse_foreign_directories(root, map(percent_dirname, percents))
    common = {"generator": GENERATOR_VERSION, "dataset": name, "seed": seed, "settings": settings,
              "source_sizes": {"train": int(len(train_targets)), "test": int(len(test_targets))}}

    test_dir = root / "test"
    _prepare_directory(test_dir, map(str, range(NUM_CLASSES)))
    test_bias = make_attr_labels(test_targets, TEST_ALIGNED_RATIO)
    test_rendered = render(test_images, test_bias, np.random.default_rng([seed, STREAM_TEST]))
    test_stats = write_images(test_dir, test_rendered, test_targets, test_bias, np.arange(len(test_targets)),
                              nested=True, description=f"{name} test")
    _write_manifest(test_dir, {**common, "split_group": "test", "aligned_ratio": TEST_ALIGNED_RATIO,
                               "splits": {"test": test_stats}})

    train_part, valid_part = split_train_valid(len(train_targets), n_valid,
                                               np.random.default_rng([seed, STREAM_VALID_SPLIT]))
    for percent in percents:
        group = percent_dirname(percent)
        ratio = aligned_ratio(percent)
        group_dir = root / group
        _prepare_directory(group_dir, ["align", "conflict", "valid"])
        splits: dict[str, Any] = {}
        for part, stream in ((train_part, STREAM_TRAIN), (valid_part, STREAM_VALID)):
            targets = train_targets[part]
            bias = make_attr_labels(targets, ratio)
            rendered = render(train_images[part], bias, np.random.default_rng([seed, stream, _ratio_code(percent)]))
            if stream == STREAM_VALID:
                if len(part) == 0:
                    continue
                splits["valid"] = write_images(group_dir / "valid", rendered, targets, bias, part,
                                               nested=nested_valid, description=f"{name} {group} valid")
                continue
            for split, keep in (("align", targets == bias), ("conflict", targets != bias)):
                splits[split] = write_images(group_dir / split, rendered[keep], targets[keep], bias[keep],
                                             part[keep], nested=True, description=f"{name} {group} {split}")
        _write_manifest(group_dir, {**common, "split_group": group, "percent": percent, "aligned_ratio": ratio,
                                    "splits": splits})
    return root


def _limited(images: np.ndarray, targets: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    return (images, targets) if limit is None else (images[:limit], targets[:limit])


CMNIST_PRESETS: dict[str, dict[str, Any]] = {
    "lff_paper": {"palette": "lff", "render": "lff", "n_valid": 0, "severity": DEFAULT_SEVERITY},
}
"""Named data protocols: ``lff_paper`` is LfF's own Colored MNIST (``make_dataset.py``): its palette and colour
noise, the whole MNIST train split for training and the MNIST test split (unbiased) for evaluation."""


def _checked_common(out: Any, percents: Any, seed: Any, n_valid: Any, limit: Any) -> tuple[str, list[float]]:
    """The checks shared by both generators; returns ``out`` as a path string and the parsed percentages."""
    require(out is not None, "--out is required: the folder to write the data into (DisEnt's --data_dir)")
    for flag, value, least in (("seed", seed, 0), ("n_valid", n_valid, 0), ("limit", limit, 1)):
        require((flag == "limit" and value is None)
                or (isinstance(value, int) and not isinstance(value, bool) and value >= least),
                f"--{flag} must be an integer >= {least}, got {value!r}")
    require(limit is None or n_valid < limit, f"--n_valid {n_valid} must be below --limit {limit} (the valid images "
                                              f"are drawn from the first --limit train images)")
    values = parse_percents(percents)
    require_writable_dir(out, f"--out {out}")
    return str(out), values


def _source_train_size(n_valid: int, size: int) -> None:
    """Refuse an ``n_valid`` that leaves no training images in a source train split of ``size`` images."""
    require(n_valid < size, f"--n_valid {n_valid} must be below the size of the source train split ({size})")


def cmnist(mnist_root: str | None = None, out: str | None = None, percents: Any = PERCENTS, seed: int = 0,
           palette: str = DEFAULT_PALETTE, render: str = DEFAULT_RENDERER, colors_path: str | None = None,
           severity: int = DEFAULT_SEVERITY, n_valid: int = 5000, limit: int | None = None, download: bool = False,
           preset: str | None = None) -> str:
    """Colored MNIST (LfF's bias protocol; ``palette`` 'hues' or 'lff'; ``render`` 'lff' or 'disent_figure') in
    DisEnt's layout under ``out/cmnist``. ``preset`` sets palette, renderer, severity and n_valid at once
    (:data:`CMNIST_PRESETS`). ``limit`` keeps only the first ``limit`` images of each MNIST split (for quick tests).
    Every argument is checked (:class:`ConfigError`) before anything is read or written.
    """
    if preset is not None:
        require(preset in CMNIST_PRESETS, f"--preset must be one of {sorted(CMNIST_PRESETS)}, got {preset!r}")
        palette, render, n_valid, severity = (CMNIST_PRESETS[preset][key]
                                              for key in ("palette", "render", "n_valid", "severity"))
    require(mnist_root is not None, "--mnist_root is required: the MNIST root (holding MNIST/raw/*-ubyte)")
    out, percent_values = _checked_common(out, percents, seed, n_valid, limit)
    require(palette in PALETTES, f"--palette must be one of {PALETTES}, got {palette!r}")
    require(render in RENDERERS, f"--render must be one of {RENDERERS}, got {render!r}")
    require(severity in range(1, len(COLOUR_NOISE_STD) + 1),
            f"--severity must lie in 1..{len(COLOUR_NOISE_STD)}, got {severity!r}")
    colours = palette_colours(palette, None if colors_path is None else str(colors_path))
    train_x, train_y = load_mnist(str(mnist_root), train=True, download=download)
    test_x, test_y = load_mnist(str(mnist_root), train=False, download=download)
    train_x, train_y = _limited(train_x.numpy(), train_y.numpy(), limit)
    test_x, test_y = _limited(test_x.numpy(), test_y.numpy(), limit)
    _source_train_size(n_valid, len(train_y))

    def draw(digits: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return render_digits(render, digits, bias, colours, severity, rng)

    settings = {"palette": palette, "render": render, "colours": np.round(colours.astype(np.float64), 6).tolist(),
                "severity": severity, "colour_noise_std": colour_noise_std(render, severity), "n_valid": n_valid,
                "limit": limit}
    root = generate("cmnist", train_x, train_y, test_x, test_y, draw, out, percent_values, seed,
                    n_valid, nested_valid=False, settings=settings)
    return str(root)


def load_cifar10(cifar_root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10 from the python pickle batches: ``(train uint8 (50000,32,32,3), labels, test images, labels)``."""
    root = Path(cifar_root)
    batch_dir = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    missing = [n for n in (*CIFAR_BATCHES, CIFAR_TEST_BATCH) if not (batch_dir / n).exists()]
    if missing:
        raise DataNotFoundError(f"CIFAR-10 not found: put the python batches (data_batch_1..5, test_batch) in "
                                f"'{root / 'cifar-10-batches-py'}' (missing: {', '.join(missing)})")

    def read(names: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for batch_name in names:
            with open(batch_dir / batch_name, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
        return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)

    train_x, train_y = read(CIFAR_BATCHES)
    test_x, test_y = read([CIFAR_TEST_BATCH])
    return train_x, train_y, test_x, test_y


def cifar10c(cifar_root: str | None = None, out: str | None = None, frost_dir: str | None = None,
             percents: Any = PERCENTS, seed: int = 0, severity: int = DEFAULT_SEVERITY, n_valid: int = 5000,
             limit: int | None = None) -> str:
    """Corrupted CIFAR-10 type0 (LfF severity ``severity`` = CIFAR-10-C level ``severity + 1``) under
    ``out/cifar10c``; ``frost_dir`` holds frost1.png .. frost5.jpg. Every argument is checked (:class:`ConfigError`)
    before anything is read or written."""
    require(cifar_root is not None, "--cifar_root is required: the folder holding cifar-10-batches-py")
    out, percent_values = _checked_common(out, percents, seed, n_valid, limit)
    require(severity in CIFAR10C_SEVERITIES, f"--severity must lie in 1..{CIFAR10C_SEVERITIES[-1]}, got {severity!r}")
    level = corruption_level(severity)
    train_x, train_y, test_x, test_y = load_cifar10(str(cifar_root))
    frost_dir = str(resolve_frost_dir(None if frost_dir is None else str(frost_dir)))
    train_x, train_y = _limited(train_x, train_y, limit)
    test_x, test_y = _limited(test_x, test_y, limit)
    _source_train_size(n_valid, len(train_y))

    def render(images: np.ndarray, bias: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return corrupt_type0(images, bias, severity, rng, frost_dir=frost_dir, progress=True)

    settings = {"corruptions": list(TYPE0_CORRUPTIONS), "severity": severity, "cifar10c_level": level,
                "n_valid": n_valid, "limit": limit}
    root = generate("cifar10c", train_x, train_y, test_x, test_y, render, out, percent_values, seed,
                    n_valid, nested_valid=True, settings=settings)
    return str(root)


def from_lff(lff_dir: str | None = None, out: str | None = None, percent: Any = None, severity: int = 4) -> Path:
    """Convert LfF's Colored MNIST of one ratio into ``OUT/cmnist/<pct>`` and ``OUT/cmnist/test`` with manifests:
    each LfF sample becomes ``<index in LfF's file>_<digit>_<colour>.png`` (lossless, so the same samples), its
    ``valid`` split (unbiased) the test split. LfF's test images differ per ratio (their colour noise is drawn per
    file), so an ``OUT`` whose test split came from another ratio is refused: convert each ratio into its own."""
    require(lff_dir is not None and out is not None, "--lff_dir (LfF's data_dir) and --out are required")
    parsed = parse_percents(percent if percent is not None else "")
    require(len(parsed) == 1, f"--percent takes one ratio of {', '.join(f'{p:g}' for p in PERCENTS)}")
    folder = lff_folder(lff_dir, parsed[0], severity)
    if not folder.is_dir():
        raise DataNotFoundError(f"'{folder}' not found: LfF's make_dataset.py writes ColoredMNIST-Skewed<ratio>-"
                                f"Severity<s> under its data_dir (--lff_dir); --percent {parsed[0]:g} --severity "
                                f"{severity} name that folder")
    splits = {split: read_lff_split(folder, split) for split in ("train", "test")}
    root = Path(out) / "cmnist"
    require_writable_dir(root, f"--out {out}")
    group = percent_dirname(parsed[0])
    _refuse_foreign_directories(root, [group])
    common = {"generator": GENERATOR_VERSION, "dataset": "cmnist", "seed": None,
              "settings": {"source": "lff_npy", "lff_folder": folder.name, "palette": "lff", "render": "lff",
                           "severity": severity, "n_valid": 0},
              "source_sizes": {split: int(len(values[1])) for split, values in splits.items()}}

    def arrays(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        images, targets, biases = splits[split]
        return images.permute(0, 2, 3, 1).numpy(), targets.numpy(), biases.numpy()

    images, targets, biases = arrays("test")
    test_dir = root / "test"
    test_manifest = test_dir / MANIFEST_NAME
    previous = json.loads(test_manifest.read_text()).get("settings", {}) if test_manifest.exists() else None
    if previous is not None and previous.get("lff_folder") not in (None, folder.name):
        raise FileExistsError(f"'{test_dir}' holds the test split of {previous.get('lff_folder')}; LfF's test images "
                              f"differ per ratio: convert {folder.name} into another --out")
    _prepare_directory(test_dir, map(str, range(NUM_CLASSES)))
    stats = write_images(test_dir, images, targets, biases, np.arange(len(targets)), nested=True,
                         description="cmnist test")
    _write_manifest(test_dir, {**common, "split_group": "test", "aligned_ratio": TEST_ALIGNED_RATIO,
                               "splits": {"test": stats}})
    images, targets, biases = arrays("train")
    group_dir = root / group
    _prepare_directory(group_dir, ["align", "conflict", "valid"])
    indices = np.arange(len(targets))
    train_stats = {split: write_images(group_dir / split, images[keep], targets[keep], biases[keep], indices[keep],
                                       nested=True, description=f"cmnist {group} {split}")
                   for split, keep in (("align", targets == biases), ("conflict", targets != biases))}
    _write_manifest(group_dir, {**common, "split_group": group, "percent": parsed[0],
                                "aligned_ratio": aligned_ratio(parsed[0]), "splits": train_stats})
    return root


GENERATORS: dict[str, Callable[..., str]] = {"cmnist": cmnist, "cifar10c": cifar10c, "from_lff": from_lff}


def main(dataset: str | None = None, **flags: Any) -> None:
    """``cmnist`` or ``cifar10c`` with its flags (see the module docstring); prints the dataset's folder."""
    require(dataset in GENERATORS, f"the first argument must be one of {sorted(GENERATORS)}, got {dataset!r} (run "
                                   f"with --help for the usage)")
    generator = GENERATORS[dataset]
    defaults = {name: parameter.default for name, parameter in inspect.signature(generator).parameters.items()}
    print(generator(**build_config(defaults, flags)))


if __name__ == "__main__":
    run_cli(main, user_errors=(DataNotFoundError, CorruptDataError, FileExistsError))
