"""The ten Corrupted CIFAR-10 type0 corruptions on a small image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datasets.corruptions import (CORRUPTIONS, FROST_FILES, contrast, frost, hsv_to_rgb, motion_blur_gray,
                                  plasma_fractal, rgb_to_hsv)
from datasets.mnist_io import DataNotFoundError


@pytest.fixture(scope="module")
def frost_dir(tmp_path_factory):
    """Fake frost textures (random pictures of the original names), large enough for the 0.2x downscale."""
    directory = tmp_path_factory.mktemp("frost")
    rng = np.random.default_rng(0)
    for name in FROST_FILES:
        Image.fromarray(rng.integers(0, 256, size=(260, 300, 3), dtype=np.uint8)).save(directory / name)
    return directory


@pytest.fixture(scope="module")
def image():
    rows, cols = np.mgrid[0:32, 0:32]
    picture = np.stack([cols * 7, rows * 7, 100 + 0 * rows], axis=-1).astype(np.uint8)
    picture[8:24, 12:20] = [200, 50, 50]
    return picture


def corrupt(name, image, severity, seed, frost_dir):
    kwargs = {"frost_dir": frost_dir} if name == "frost" else {}
    return CORRUPTIONS[name](image, severity, np.random.default_rng(seed), **kwargs)


def test_registry_lists_the_ten_type0_corruptions():
    assert sorted(CORRUPTIONS) == sorted(["snow", "frost", "fog", "brightness", "contrast", "spatter", "elastic",
                                          "jpeg", "pixelate", "saturate"])


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_shape_dtype_determinism_and_effect(name, image, frost_dir):
    out = corrupt(name, image, 5, 3, frost_dir)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out, corrupt(name, image, 5, 3, frost_dir))
    changed = np.any(out != image, axis=-1).mean()
    assert changed > 0.02, f"{name} changed only {changed:.1%} of the pixels"
    assert np.abs(out.astype(int) - image).mean() > 1.0


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_level_runs(name, image, frost_dir):
    for level in range(1, 6):
        out = corrupt(name, image, level, 0, frost_dir)
        assert out.shape == image.shape and out.dtype == np.uint8
    with pytest.raises(ValueError):
        corrupt(name, image, 6, 0, frost_dir)


@pytest.mark.parametrize("name", ["snow", "frost", "fog", "spatter", "elastic"])
def test_random_corruptions_depend_on_the_seed(name, image, frost_dir):
    assert not np.array_equal(corrupt(name, image, 5, 1, frost_dir), corrupt(name, image, 5, 2, frost_dir))


def test_spatter_water_branch_adds_turquoise(image):
    out = CORRUPTIONS["spatter"](image, 2, np.random.default_rng(0)).astype(int)
    assert np.all(out >= image.astype(int) - 1)  # water only adds light
    assert (out - image).sum() > 0


def test_photometric_corruptions_do_what_they_say(image):
    rng = np.random.default_rng(0)
    assert CORRUPTIONS["brightness"](image, 5, rng).mean() > image.mean() + 10
    low = contrast(image, 5, rng).astype(float)
    assert low.std(axis=(0, 1)).max() < 0.2 * image.astype(float).std(axis=(0, 1)).max()
    assert np.allclose(low.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=2)
    blocks = CORRUPTIONS["pixelate"](image, 5, rng)
    assert len(np.unique(blocks.reshape(-1, 3), axis=0)) < len(np.unique(image.reshape(-1, 3), axis=0))
    grey = np.full((4, 4, 3), 120, dtype=np.uint8)
    assert np.array_equal(CORRUPTIONS["saturate"](grey, 1, rng), grey)


def test_hsv_round_trip():
    rgb = np.random.default_rng(0).random((50, 3))
    hsv = rgb_to_hsv(rgb)
    assert np.all((hsv >= 0) & (hsv <= 1))
    assert np.allclose(hsv_to_rgb(hsv), rgb)
    assert np.allclose(rgb_to_hsv(np.array([0.0, 0.0, 1.0])), [2 / 3, 1, 1])


def test_plasma_fractal_and_motion_blur():
    heights = plasma_fractal(32, 1.75, np.random.default_rng(0))
    assert heights.shape == (32, 32) and heights.min() == 0 and heights.max() == 1
    dot = np.zeros((20, 20))
    dot[10, 10] = 1.0
    blurred = motion_blur_gray(dot, radius=3, sigma=2, angle=0)  # 7 taps looking 0..6 pixels to the right
    assert blurred.sum() == pytest.approx(1.0)
    assert np.flatnonzero(blurred[10]).tolist() == [4, 5, 6, 7, 8, 9, 10] and np.count_nonzero(blurred) == 7
    assert blurred[10, 10] > blurred[10, 4]


def test_frost_needs_its_images(image, tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        frost(image, 5, np.random.default_rng(0), frost_dir=tmp_path)
