"""The ten corruptions of LfF's Corrupted CIFAR-10 "type0" (Hendrycks & Dietterich's CIFAR-10-C, as used by LfF).

Every corruption is a function ``(image uint8 HxWx3, severity, rng) -> uint8 HxWx3`` where ``severity`` is the
CIFAR-10-C level 1..5 (LfF's ``severity s`` config uses level ``s + 1``, see :mod:`datasets.lff_protocols`). The
parameter tables are LfF's (``data/corrupted_cifar10_protocol.py``, spec §3.6); the implementations are our own with
numpy/scipy/Pillow instead of OpenCV, scikit-image and ImageMagick. Like LfF, results are clipped to [0, 255] and
cast to uint8 by truncation. Known deviations from the original stack (all small, sub-pixel or few grey levels):

* Snow's motion blur re-implements ImageMagick's ``MotionBlurImage`` (one-sided Gaussian line kernel of width
  ``2*ceil(radius)+1``, integer pixel offsets, edge-clamped pixels).
* Spatter's "water" branch (levels 1-3) uses our Canny (Sobel, L1 magnitude, non-maximum suppression, hysteresis)
  and scipy's exact Euclidean distance transform instead of OpenCV's 5x5-mask approximation.
* Frost's 0.2x downscale reproduces OpenCV's ``INTER_LINEAR`` at an exact 1/5 factor, i.e. the pixel sampling
  ``frost[2::5, 2::5]``.

Randomness comes only from the ``rng`` argument (a :class:`numpy.random.Generator`).
"""
from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from datasets.mnist_io import DataNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FROST_DIR = Path("..") / "shared" / "reference" / "data" / "lff_resource"
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
N_FROST_CHOICES = 5  # LfF draws randint(5): frost6.jpg is listed but never used

SNOW = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)]
FROST = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]
FOG = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]
BRIGHTNESS = [0.05, 0.1, 0.15, 0.2, 0.3]
CONTRAST = [0.75, 0.5, 0.4, 0.3, 0.15]
SPATTER = [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
           (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)]
ELASTIC = [(0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)]
JPEG_QUALITY = [80, 65, 58, 50, 40]
PIXELATE = [0.95, 0.9, 0.85, 0.75, 0.65]
SATURATE = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]


def _level(table: list, severity: int):
    if not 1 <= severity <= len(table):
        raise ValueError(f"severity must be a CIFAR-10-C level in 1..{len(table)}, got {severity}")
    return table[severity - 1]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and truncate to uint8, as LfF's ``np.array(img).astype(np.uint8)``."""
    return np.clip(image, 0, 255).astype(np.uint8)


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
    return image


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of a turn), scikit-image's convention."""
    maximum = rgb.max(axis=-1)
    delta = np.ptp(rgb, axis=-1)
    safe_delta = np.where(delta == 0, 1.0, delta)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(maximum == red, (green - blue) / safe_delta,
                   np.where(maximum == green, 2.0 + (blue - red) / safe_delta, 4.0 + (red - green) / safe_delta))
    hue = np.where(delta == 0, 0.0, (hue / 6.0) % 1.0)
    saturation = np.where(maximum == 0, 0.0, delta / np.where(maximum == 0, 1.0, maximum))
    return np.stack([hue, saturation, maximum], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(hue * 6.0)
    fraction = hue * 6.0 - sector
    sector = sector.astype(np.int64) % 6
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    choices = [np.stack(c, axis=-1) for c in ((value, t, p), (q, value, p), (p, value, t), (p, q, value),
                                              (t, p, value), (value, p, q))]
    return np.choose(sector[..., None], choices)


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map on a ``mapsize`` x ``mapsize`` torus, normalised to [0, 1] (fog's pattern).

    The wibble starts at 100 and each new point gets ``mean/4 + wibble * U(-wibble, wibble)`` as in CIFAR-10-C.
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two >= 2, got {mapsize}")
    heights = np.zeros((mapsize, mapsize), dtype=np.float64)
    step, wibble = mapsize, 100.0

    def jittered(summed: np.ndarray) -> np.ndarray:
        return summed / 4 + wibble * rng.uniform(-wibble, wibble, summed.shape)

    while step >= 2:
        half = step // 2
        corners = heights[0::step, 0::step]
        square_sum = corners + np.roll(corners, -1, axis=0)
        square_sum = square_sum + np.roll(square_sum, -1, axis=1)
        heights[half::step, half::step] = jittered(square_sum)
        centres = heights[half::step, half::step]
        corners = heights[0::step, 0::step]
        heights[0::step, half::step] = jittered(centres + np.roll(centres, 1, axis=0)
                                                + corners + np.roll(corners, -1, axis=1))
        heights[half::step, 0::step] = jittered(centres + np.roll(centres, 1, axis=1)
                                                + corners + np.roll(corners, -1, axis=0))
        step //= 2
        wibble /= wibbledecay
    heights -= heights.min()
    return heights / heights.max()


def clipped_zoom(image: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom the centre ``ceil(h / zoom)`` crop by ``zoom_factor`` (bilinear) and trim back to ``h x h``."""
    height = image.shape[0]
    crop = int(np.ceil(height / zoom_factor))
    top = (height - crop) // 2
    zoomed = ndimage.zoom(image[top:top + crop, top:top + crop], (zoom_factor, zoom_factor) + (1,) * (image.ndim - 2),
                          order=1)
    trim = (zoomed.shape[0] - height) // 2
    return zoomed[trim:trim + height, trim:trim + height]


def motion_blur_gray(layer: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick-style motion blur of a 2-D array: a one-sided Gaussian along ``angle`` degrees."""
    width = int(2 * np.ceil(radius) + 1)
    taps = np.arange(width, dtype=np.float64)
    kernel = np.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    radians = np.deg2rad(angle)
    offset_x = np.ceil(taps * np.cos(radians) - 0.5).astype(np.int64)
    offset_y = np.ceil(taps * np.sin(radians) - 0.5).astype(np.int64)
    height, width_px = layer.shape
    rows = np.clip(np.arange(height)[None, :, None] + offset_y[:, None, None], 0, height - 1)
    cols = np.clip(np.arange(width_px)[None, None, :] + offset_x[:, None, None], 0, width_px - 1)
    return np.tensordot(kernel, layer[rows, cols], axes=1)


def snow(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Falling snow: a thresholded, zoomed, motion-blurred noise layer added twice (once rotated by 180°)."""
    loc, scale, zoom, threshold, blur_radius, blur_sigma, keep = _level(SNOW, severity)
    x = _check_image(image).astype(np.float32) / 255.0
    layer = rng.normal(loc=loc, scale=scale, size=x.shape[:2])
    layer = clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)
    blurred = motion_blur_gray(layer, blur_radius, blur_sigma, rng.uniform(-135, -45))
    layer = (np.clip(np.rint(blurred), 0, 255) / 255.0)[..., None]
    gray = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
    x = keep * x + (1 - keep) * np.maximum(x, gray * 1.5 + 0.5)
    return _to_uint8(np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255)


def resolve_frost_dir(frost_dir: str | os.PathLike | None) -> Path:
    """The folder of the frost textures (default: LfF's resource folder in ../shared); DataNotFoundError if absent."""
    directory = Path(frost_dir) if frost_dir is not None else REPO_ROOT / DEFAULT_FROST_DIR
    missing = [name for name in FROST_FILES[:N_FROST_CHOICES] if not (directory / name).exists()]
    if missing:
        raise DataNotFoundError(f"frost images {missing} not found in '{directory}': pass --frost_dir pointing to "
                                f"LfF's resource folder (frost1.png .. frost5.jpg)")
    return directory


@functools.lru_cache(maxsize=4)
def _load_frost_images(directory: str) -> tuple[np.ndarray, ...]:
    """The frost textures as RGB uint8 arrays downscaled by 0.2 like OpenCV's INTER_LINEAR (pixels 2, 7, 12, ...)."""
    textures = []
    for name in FROST_FILES[:N_FROST_CHOICES]:
        with Image.open(Path(directory) / name) as handle:
            full = np.asarray(handle.convert("RGB"))
        height, width = (int(round(s * 0.2)) for s in full.shape[:2])
        rows = np.minimum(5 * np.arange(height) + 2, full.shape[0] - 1)
        cols = np.minimum(5 * np.arange(width) + 2, full.shape[1] - 1)
        textures.append(full[rows][:, cols])
    return tuple(textures)


def frost(image: np.ndarray, severity: int, rng: np.random.Generator,
          frost_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Blend with a random crop of one of five frost photographs: ``a * x + b * frost``.

    ``frost_dir`` holds frost1.png .. frost5.jpg (default ``../shared/reference/data/lff_resource`` from the repo
    root, resolved at call time).
    """
    image_weight, frost_weight = _level(FROST, severity)
    height, width = _check_image(image).shape[:2]
    textures = _load_frost_images(str(resolve_frost_dir(frost_dir)))
    texture = textures[rng.integers(N_FROST_CHOICES)]
    top = rng.integers(0, texture.shape[0] - height)
    left = rng.integers(0, texture.shape[1] - width)
    crop = texture[top:top + height, left:left + width].astype(np.float64)
    return _to_uint8(image_weight * image.astype(np.float64) + frost_weight * crop)


def fog(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add a plasma-fractal haze and rescale by ``max / (max + strength)``."""
    strength, wibbledecay = _level(FOG, severity)
    x = _check_image(image) / 255.0
    height, width = x.shape[:2]
    mapsize = 1 << max(1, int(np.ceil(np.log2(max(height, width, 32)))))
    max_value = x.max()
    x = x + strength * plasma_fractal(mapsize, wibbledecay, rng)[:height, :width, None]
    return _to_uint8(np.clip(x * max_value / (max_value + strength), 0, 1) * 255)


def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Raise the HSV value channel by a constant."""
    shift = _level(BRIGHTNESS, severity)
    hsv = rgb_to_hsv(_check_image(image) / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0, 1)
    return _to_uint8(np.clip(hsv_to_rgb(hsv), 0, 1) * 255)


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Shrink every channel towards its mean by a constant factor."""
    factor = _level(CONTRAST, severity)
    x = _check_image(image) / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    return _to_uint8(np.clip((x - means) * factor + means, 0, 1) * 255)


def _canny(gray: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean edge map: 3x3 Sobel, L1 magnitude, non-maximum suppression, 8-connected hysteresis (no smoothing)."""
    gray = gray.astype(np.float64)
    grad_x = ndimage.sobel(gray, axis=1, mode="mirror")
    grad_y = ndimage.sobel(gray, axis=0, mode="mirror")
    magnitude = np.abs(grad_x) + np.abs(grad_y)
    angle = np.rad2deg(np.arctan2(grad_y, grad_x)) % 180
    padded = np.pad(magnitude, 1)
    height, width = gray.shape
    rows, cols = np.mgrid[0:height, 0:width] + 1
    direction = np.select([(angle < 22.5) | (angle >= 157.5), angle < 67.5, angle < 112.5], [0, 1, 2], default=3)
    steps = np.array([[0, 1], [1, 1], [1, 0], [1, -1]])[direction]
    before = padded[rows - steps[..., 0], cols - steps[..., 1]]
    after = padded[rows + steps[..., 0], cols + steps[..., 1]]
    thin = (magnitude > before) & (magnitude >= after)
    weak = thin & (magnitude > low)
    components, count = ndimage.label(weak, structure=np.ones((3, 3)))
    strong_ids = np.unique(components[thin & (magnitude > high)])
    return np.isin(components, strong_ids[strong_ids > 0]) if count else np.zeros_like(weak)


def _equalise_histogram(gray: np.ndarray) -> np.ndarray:
    histogram = np.bincount(gray.ravel(), minlength=256)
    cdf = np.cumsum(histogram)
    cdf_min = cdf[histogram > 0][0]
    if cdf[-1] == cdf_min:
        return gray
    lookup = np.clip(np.rint((cdf - cdf_min) * 255.0 / (cdf[-1] - cdf_min)), 0, 255).astype(np.uint8)
    return lookup[gray]


def _water_mask(liquid: np.ndarray) -> np.ndarray:
    """Spatter's water-drop intensity map (levels 1-3): edge-distance texture of the liquid layer."""
    liquid_u8 = (liquid * 255).astype(np.uint8)
    edges = _canny(liquid_u8, 50, 150)
    distance = ndimage.distance_transform_edt(~edges) if edges.any() else np.full(liquid.shape, 20.0)
    distance = np.minimum(distance, 20.0)
    distance = ndimage.uniform_filter(distance, size=3, mode="mirror").astype(np.uint8)
    distance = _equalise_histogram(distance)
    relief = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
    distance = np.clip(np.rint(ndimage.correlate(distance.astype(np.float64), relief, mode="mirror")), 0, 255)
    distance = ndimage.uniform_filter(distance, size=3, mode="mirror")
    mask = liquid_u8.astype(np.float64) * distance
    peak = mask.max()
    return mask / peak if peak > 0 else mask


def spatter(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Liquid splashes: pale-turquoise water drops (levels 1-3) or brown mud (levels 4-5)."""
    loc, scale, sigma, threshold, intensity, is_mud = _level(SPATTER, severity)
    x = _check_image(image).astype(np.float32) / 255.0
    liquid = rng.normal(loc=loc, scale=scale, size=x.shape[:2])
    liquid = ndimage.gaussian_filter(liquid, sigma=sigma, mode="nearest", truncate=4.0)
    liquid[liquid < threshold] = 0
    if not is_mud:
        water = _water_mask(liquid)[..., None] * intensity
        colour = np.array([175, 238, 238], dtype=np.float64) / 255.0
        return _to_uint8(np.clip(x + water * colour, 0, 1) * 255)
    mask = ndimage.gaussian_filter(np.where(liquid > threshold, 1.0, 0.0).astype(np.float32), sigma=intensity,
                                   mode="nearest", truncate=4.0)
    mask[mask < 0.8] = 0
    mud = np.array([63, 42, 20], dtype=np.float32) / 255.0 * mask[..., None]
    return _to_uint8(np.clip(x * (1 - mask[..., None]) + mud, 0, 1) * 255)


def elastic(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Random affine jitter of three control points, then a smoothed random displacement field (bilinear)."""
    alpha_frac, sigma_frac, affine_frac = _level(ELASTIC, severity)
    x = _check_image(image).astype(np.float32) / 255.0
    height, width = x.shape[:2]
    size = float(height)
    alpha, sigma, jitter = size * alpha_frac, size * sigma_frac, size * affine_frac
    centre = np.float32([height, width]) // 2
    half = min(height, width) // 3
    source = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    target = source + rng.uniform(-jitter, jitter, size=source.shape).astype(np.float32)
    forward = np.linalg.solve(np.c_[source, np.ones(3)], target).T  # maps (x, y, 1) -> (x', y')
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    src_cols = inverse[0, 0] * cols + inverse[0, 1] * rows + inverse[0, 2]
    src_rows = inverse[1, 0] * cols + inverse[1, 1] * rows + inverse[1, 2]
    warped = np.stack([ndimage.map_coordinates(x[..., c], [src_rows, src_cols], order=1, mode="mirror")
                       for c in range(3)], axis=-1)
    dx = (ndimage.gaussian_filter(rng.uniform(-1, 1, size=(height, width)), sigma, mode="reflect", truncate=3)
          * alpha).astype(np.float32)
    dy = (ndimage.gaussian_filter(rng.uniform(-1, 1, size=(height, width)), sigma, mode="reflect", truncate=3)
          * alpha).astype(np.float32)
    displaced = np.stack([ndimage.map_coordinates(warped[..., c], [rows + dy, cols + dx], order=1, mode="reflect")
                          for c in range(3)], axis=-1)
    return _to_uint8(np.clip(displaced, 0, 1) * 255)


def jpeg(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Re-encode as JPEG at a low quality."""
    quality = _level(JPEG_QUALITY, severity)
    buffer = io.BytesIO()
    Image.fromarray(_check_image(image)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-downsample by a factor and box-upsample back to the original size."""
    factor = _level(PIXELATE, severity)
    height, width = _check_image(image).shape[:2]
    small = Image.fromarray(image).resize((int(width * factor), int(height * factor)), Image.Resampling.BOX)
    return np.asarray(small.resize((width, height), Image.Resampling.BOX)).copy()


def saturate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Scale and shift the HSV saturation channel."""
    scale, shift = _level(SATURATE, severity)
    hsv = rgb_to_hsv(_check_image(image) / 255.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * scale + shift, 0, 1)
    return _to_uint8(np.clip(hsv_to_rgb(hsv), 0, 1) * 255)


Corruption = Callable[..., np.ndarray]

CORRUPTIONS: dict[str, Corruption] = {
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "spatter": spatter,
    "elastic": elastic,
    "jpeg": jpeg,
    "pixelate": pixelate,
    "saturate": saturate,
}
