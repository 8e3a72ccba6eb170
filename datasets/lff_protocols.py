"""LfF's dataset protocols (spec §3.3-3.6): bias-label assignment, Colored MNIST and Corrupted CIFAR-10 "type0".

Bias labels (``make_attr_labels``): deterministic. With aligned ratio ``a`` (``1 - pct/100`` for train and valid,
0.1 for the unbiased test split), class c's row is ``R_c[j] = a`` if ``j == c`` else ``(1 - a) / (C - 1)``; the
milestones are ``m_c = round(n_c * cumsum(R_c))`` (numpy's half-to-even rounding) and the k-th sample of class c in
dataset order gets bias ``min{j : m_c[j] > k}``, so bias labels form contiguous blocks and conflicting samples are
spread evenly over the other C - 1 bias values.

Colored MNIST has two independent choices: the palette (the mean colour of every bias label) and the renderer
(how a colour and a grey digit make an RGB image).

Renderers (:data:`RENDERERS`):
- ``"lff"`` (LfF's ``colorize``): one colour per image, ``colour = clip(palette[bias] + N(0, 1)^3 * std, 0, 1)``,
  image = ``colour * digit`` (foreground coloured, black background, anti-aliasing kept), truncated to uint8;
  ``std`` by LfF severity 1..5 is 0.05/0.02/0.01/0.005/0.002 (LfF's default severity 4: 0.005).
- ``"disent_figure"``: what DisEnt's dataset figure (``assets/data.png``) shows: digit pixels of intensity
  >= :data:`FIGURE_THRESHOLD` take the full palette colour, darker pixels stay grey (R = G = B = intensity, so 0 is
  black), no colour noise. DisEnt's generator is not public: this is read off the figure, not off code.

Palettes: ``"lff"`` (the default) is LfF's ``colors.th`` (a 10x3x1x1 float tensor, read from a caller-given path or
``../shared/reference/data/lff_resource/colors.th``); ``"hues"`` is the pure-hue palette read off DisEnt's figure
(spec §3.3), which also seems to show how DisEnt drew its images (``disent_figure``). The default is the variant that
reproduces DisEnt's Colored MNIST ordering and magnitudes best in this project's runs (README, "Colored MNIST
reproduced"); DisEnt's released data cannot be downloaded here, so which variant they are remains unknown.

Corrupted CIFAR-10 type0: class-ordered corruption list (bias id = index in :data:`TYPE0_CORRUPTIONS`), applied
with LfF's ``severity + 1`` mapping to the CIFAR-10-C level (LfF's default severity 4 -> level 5).

All randomness comes from an explicit :class:`numpy.random.Generator`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from datasets.corruptions import CORRUPTIONS
from datasets.mnist_io import CorruptDataError, DataNotFoundError
from utils.io import CheckpointError, safe_torch_load

NUM_CLASSES = 10
PERCENTS = (0.5, 1.0, 2.0, 5.0)
TEST_ALIGNED_RATIO = 0.1
DEFAULT_SEVERITY = 4
COLOUR_NOISE_STD = (0.05, 0.02, 0.01, 0.005, 0.002)
COLOURISE_CHUNK = 4096
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COLORS_PATH = Path("..") / "shared" / "reference" / "data" / "lff_resource" / "colors.th"
HUES_PALETTE = np.array(
    [[255, 0, 0], [255, 128, 0], [255, 255, 0], [128, 255, 0], [0, 255, 0],
     [0, 255, 255], [0, 0, 255], [128, 0, 255], [255, 0, 128], [255, 0, 255]],
    dtype=np.uint8,
)
PALETTES = ("hues", "lff")
RENDERERS = ("lff", "disent_figure")
DEFAULT_RENDERER = "lff"
DEFAULT_PALETTE = "lff"
FIGURE_THRESHOLD = 100
TYPE0_CORRUPTIONS = ("snow", "frost", "fog", "brightness", "contrast",
                     "spatter", "elastic", "jpeg", "pixelate", "saturate")


def percent_dirname(percent: float | str) -> str:
    """DisEnt's folder name of a conflicting-sample percentage: 0.5 -> '0.5pct', 1 -> '1pct'."""
    value = float(str(percent).removesuffix("pct"))
    if value <= 0 or value >= 100:
        raise ValueError(f"percent must lie in (0, 100), got {percent}")
    return f"{value:g}pct"


def aligned_ratio(percent: float | str) -> float:
    """Fraction of bias-aligned samples for a conflicting percentage (LfF's ``1 - skewed_ratio``)."""
    return 1.0 - float(percent_dirname(percent).removesuffix("pct")) / 100.0


def make_attr_labels(targets: np.ndarray, aligned_ratio: float, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """LfF's deterministic bias labels (see the module docstring); ``targets`` in dataset order, returns int64."""
    targets = np.asarray(targets, dtype=np.int64)
    if not 0.0 <= aligned_ratio <= 1.0:
        raise ValueError(f"aligned_ratio must lie in [0, 1], got {aligned_ratio}")
    ratios = aligned_ratio * np.eye(num_classes) + (1 - aligned_ratio) / (num_classes - 1) * (1 - np.eye(num_classes))
    counts = np.bincount(targets, minlength=num_classes)[:num_classes]
    milestones = (counts[:, None] * np.cumsum(ratios, axis=1)).round()
    bias = np.empty_like(targets)
    for label in range(num_classes):
        members = np.flatnonzero(targets == label)
        bias[members] = np.searchsorted(milestones[label], np.arange(len(members)), side="right")
    return np.minimum(bias, num_classes - 1)


def load_lff_palette(path: str | os.PathLike | None = None) -> np.ndarray:
    """LfF's ``colors.th`` as float32 (10, 3) in [0, 1]; ``path`` defaults to ``$LFF_PALETTE`` if set, else
    ``../shared/.../colors.th``."""
    if path is None:
        path = os.environ.get("LFF_PALETTE") or REPO_ROOT / DEFAULT_COLORS_PATH
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"LfF palette '{path}' not found: pass the path of LfF's data/resource/colors.th "
                                f"(or use palette='hues')")
    try:
        colours = safe_torch_load(path)
    except CheckpointError as error:
        raise CorruptDataError(f"LfF palette: {error}") from None
    if not isinstance(colours, torch.Tensor) or colours.numel() != NUM_CLASSES * 3:
        raise CorruptDataError(f"LfF palette '{path}' holds {type(colours).__name__} "
                               f"{tuple(getattr(colours, 'shape', ()))}, not {NUM_CLASSES}x3 colours")
    return colours.reshape(NUM_CLASSES, 3).float().numpy().astype(np.float32)


def palette_colours(palette: str = DEFAULT_PALETTE, colors_path: str | os.PathLike | None = None) -> np.ndarray:
    """Mean colour of every bias label, float32 (10, 3) in [0, 1]."""
    if palette == "hues":
        return HUES_PALETTE.astype(np.float32) / 255.0
    if palette == "lff":
        return load_lff_palette(colors_path)
    raise ValueError(f"unknown palette '{palette}', expected one of {PALETTES}")


def _check_digits(digits: np.ndarray) -> np.ndarray:
    digits = np.asarray(digits)
    if digits.dtype != np.uint8 or digits.ndim != 3:
        raise ValueError(f"expected uint8 (N, H, W) digits, got {digits.dtype} {digits.shape}")
    return digits


def colourise_digits(digits: np.ndarray, bias: np.ndarray, colours: np.ndarray, severity: int,
                     rng: np.random.Generator) -> np.ndarray:
    """LfF's renderer: uint8 (N, H, W) digits -> uint8 (N, H, W, 3) with a noisy per-image foreground colour."""
    if not 1 <= severity <= len(COLOUR_NOISE_STD):
        raise ValueError(f"severity must lie in 1..{len(COLOUR_NOISE_STD)}, got {severity}")
    digits = _check_digits(digits)
    noise = rng.standard_normal((len(digits), 3)).astype(np.float32) * np.float32(COLOUR_NOISE_STD[severity - 1])
    image_colours = np.clip(colours[np.asarray(bias)] + noise, 0.0, 1.0).astype(np.float32)
    coloured = np.empty(digits.shape + (3,), dtype=np.uint8)
    for start in range(0, len(digits), COLOURISE_CHUNK):
        chunk = slice(start, start + COLOURISE_CHUNK)
        coloured[chunk] = image_colours[chunk, None, None, :] * digits[chunk, ..., None].astype(np.float32)
    return coloured


def colour_by_threshold(digits: np.ndarray, bias: np.ndarray, colours: np.ndarray,
                        threshold: int = FIGURE_THRESHOLD) -> np.ndarray:
    """DisEnt-figure rendering: uint8 (N, H, W) digits -> uint8 (N, H, W, 3); pixels >= ``threshold`` take the
    palette colour ``round(255 * colour)``, darker ones stay grey (R = G = B = intensity). No randomness."""
    digits = _check_digits(digits)
    palette = np.round(np.asarray(colours, dtype=np.float64) * 255).astype(np.uint8)
    image_colours = palette[np.asarray(bias)][:, None, None, :]
    grey = np.repeat(digits[..., None], 3, axis=-1)
    return np.where(digits[..., None] >= threshold, image_colours, grey)


def render_digits(render: str, digits: np.ndarray, bias: np.ndarray, colours: np.ndarray, severity: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Colour uint8 (N, H, W) digits with renderer ``render`` (module docstring); ``severity`` and ``rng`` only
    matter for ``lff``'s colour noise."""
    if render == "lff":
        return colourise_digits(digits, bias, colours, severity, rng)
    if render == "disent_figure":
        return colour_by_threshold(digits, bias, colours)
    raise ValueError(f"unknown renderer '{render}', expected one of {RENDERERS}")


def colour_noise_std(render: str, severity: int) -> float:
    """Standard deviation of the per-image colour noise a renderer adds (0 for ``disent_figure``)."""
    return COLOUR_NOISE_STD[severity - 1] if render == "lff" else 0.0


CIFAR10C_SEVERITIES = range(1, 5)
"""LfF's Corrupted CIFAR-10 severities: level ``severity + 1`` must be one of CIFAR-10-C's five levels, and level 1
is never used."""


def corruption_level(severity: int) -> int:
    """LfF severity 1..4 -> CIFAR-10-C level 2..5 (``protocol[name](img, severity + 1)``)."""
    if severity not in CIFAR10C_SEVERITIES:
        raise ValueError(f"LfF severity must lie in 1..{CIFAR10C_SEVERITIES[-1]}, got {severity}")
    return severity + 1


def corrupt_one(image: np.ndarray, bias: int, level: int, rng: np.random.Generator,
                frost_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Apply the type0 corruption of bias id ``bias`` at CIFAR-10-C ``level`` to one uint8 HxWx3 image."""
    name = TYPE0_CORRUPTIONS[int(bias)]
    if name == "frost":
        return CORRUPTIONS[name](image, level, rng, frost_dir=frost_dir)
    return CORRUPTIONS[name](image, level, rng)


def corrupt_type0(images: np.ndarray, bias: np.ndarray, severity: int, rng: np.random.Generator,
                  frost_dir: str | os.PathLike | None = None, progress: bool = False) -> np.ndarray:
    """Corrupted CIFAR-10 type0: image i gets corruption ``TYPE0_CORRUPTIONS[bias[i]]`` at LfF ``severity``.

    Image i draws from its own child generator ``rng.spawn(N)[i]``, so results do not depend on processing order.
    """
    level = corruption_level(severity)
    generators = rng.spawn(len(images))
    out = np.empty_like(images)
    for i in tqdm(range(len(images)), desc="corrupting", disable=not progress, leave=False):
        out[i] = corrupt_one(images[i], bias[i], level, generators[i], frost_dir)
    return out
