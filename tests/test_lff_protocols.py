"""LfF's bias-label assignment, Colored MNIST colourisation and the type0 corruption dispatch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.corruptions import CORRUPTIONS
from datasets.lff_protocols import (COLOUR_NOISE_STD, HUES_PALETTE, PERCENTS, TEST_ALIGNED_RATIO, TYPE0_CORRUPTIONS,
                                    aligned_ratio, colourise_digits, corrupt_type0, corruption_level,
                                    load_lff_palette, make_attr_labels, palette_colours, percent_dirname)
from datasets.mnist_io import DataNotFoundError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def shuffled_targets(counts: list[int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))


def test_percent_names_and_ratios():
    assert [percent_dirname(p) for p in PERCENTS] == ["0.5pct", "1pct", "2pct", "5pct"]
    assert percent_dirname("2pct") == "2pct"
    assert aligned_ratio(0.5) == pytest.approx(0.995)
    assert aligned_ratio("5pct") == pytest.approx(0.95)
    with pytest.raises(ValueError):
        percent_dirname(0)


@pytest.mark.parametrize("percent, expected", [(0.5, 300), (1, 598), (2, 1199), (5, 3000)])
def test_conflicting_totals_match_lff_on_mnist_class_counts(percent, expected):
    targets = shuffled_targets(MNIST_TRAIN_COUNTS)
    bias = make_attr_labels(targets, aligned_ratio(percent))
    assert int((bias != targets).sum()) == expected


@pytest.mark.parametrize("percent, per_class", [(0.5, 25), (1, 50), (2, 100), (5, 250)])
def test_per_class_counts_for_each_ratio(percent, per_class):
    targets = shuffled_targets([5000] * 10)
    bias = make_attr_labels(targets, aligned_ratio(percent))
    for label in range(10):
        of_class = bias[targets == label]
        assert int((of_class != label).sum()) == per_class
        others = np.bincount(of_class, minlength=10)[np.arange(10) != label]
        expected = per_class / 9
        assert others.sum() == per_class
        assert np.all((others >= np.floor(expected)) & (others <= np.ceil(expected)))


def test_bias_labels_form_contiguous_blocks_in_dataset_order():
    targets = shuffled_targets([300] * 10, seed=3)
    bias = make_attr_labels(targets, aligned_ratio(5))
    for label in range(10):
        assert np.all(np.diff(bias[targets == label]) >= 0)
    # the first samples of class 3 in dataset order take bias 0 (milestone 0 is round(300 * 0.05 / 9) = 2)
    assert list(bias[targets == 3][:3]) == [0, 0, 1]


def test_unbiased_split_spreads_every_bias_value_equally():
    targets = shuffled_targets([1000] * 10)
    bias = make_attr_labels(targets, TEST_ALIGNED_RATIO)
    for label in range(10):
        assert np.all(np.bincount(bias[targets == label], minlength=10) == 100)
    mnist_test = shuffled_targets(MNIST_TEST_COUNTS)
    assert int((make_attr_labels(mnist_test, TEST_ALIGNED_RATIO) != mnist_test).sum()) == 9000


def test_colourise_colours_the_foreground_only():
    digits = np.zeros((2, 6, 6), dtype=np.uint8)
    digits[:, 1:5, 2:4] = 255
    digits[:, 1, 2] = 128
    colours = palette_colours("hues")
    out = colourise_digits(digits, np.array([0, 6]), colours, severity=4, rng=np.random.default_rng(0))
    assert out.shape == (2, 6, 6, 3) and out.dtype == np.uint8
    assert np.all(out[digits == 0] == 0)
    # red (255, 0, 0) and blue (0, 0, 255) within the colour noise (std 0.005 -> a few grey levels)
    assert np.all(np.abs(out[0, 2, 2].astype(int) - [255, 0, 0]) <= 8)
    assert np.all(np.abs(out[1, 2, 2].astype(int) - [0, 0, 255]) <= 8)
    # anti-aliasing is kept: a half-intensity pixel gets about half the colour
    assert 115 <= out[0, 1, 2, 0] <= 128


def test_colourise_is_deterministic_under_a_seed_and_noisy_across_seeds():
    digits = np.full((8, 4, 4), 200, dtype=np.uint8)
    bias = np.arange(8) % 10
    colours = palette_colours("hues")
    first = colourise_digits(digits, bias, colours, 1, np.random.default_rng(5))
    again = colourise_digits(digits, bias, colours, 1, np.random.default_rng(5))
    other = colourise_digits(digits, bias, colours, 1, np.random.default_rng(6))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert COLOUR_NOISE_STD[3] == 0.005
    with pytest.raises(ValueError):
        colourise_digits(digits, bias, colours, 6, np.random.default_rng(0))


def test_palettes(tmp_path):
    hues = palette_colours("hues")
    assert hues.shape == (10, 3) and np.allclose(hues * 255, HUES_PALETTE)
    with pytest.raises(DataNotFoundError, match="missing.th"):
        load_lff_palette(tmp_path / "missing.th")
    with pytest.raises(ValueError):
        palette_colours("rainbow")


def test_lff_palette_from_shared_resource():
    from datasets.lff_protocols import DEFAULT_COLORS_PATH, REPO_ROOT
    if not (REPO_ROOT / DEFAULT_COLORS_PATH).exists():
        pytest.skip("LfF colors.th not available under ../shared")
    colours = load_lff_palette()
    assert colours.shape == (10, 3)
    assert np.allclose(colours[0], [0.9837, 0.3125, 0.1686], atol=1e-4)
    assert np.allclose(colours[9], [0.8337, 0.2024, 0.2669], atol=1e-4)


def test_type0_corruption_dispatch_and_severity_mapping(tmp_path):
    assert corruption_level(4) == 5 and corruption_level(1) == 2
    with pytest.raises(ValueError):
        corruption_level(5)
    with pytest.raises(ValueError):
        corruption_level(0)
    assert set(TYPE0_CORRUPTIONS) == set(CORRUPTIONS) and TYPE0_CORRUPTIONS[1] == "frost"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    bias = np.array([3, 4, 8, 9])  # brightness, contrast, pixelate, saturate
    out = corrupt_type0(images, bias, severity=4, rng=np.random.default_rng(1))
    children = np.random.default_rng(1).spawn(4)
    for i, b in enumerate(bias):
        assert np.array_equal(out[i], CORRUPTIONS[TYPE0_CORRUPTIONS[b]](images[i], 5, children[i]))
    assert np.array_equal(out, corrupt_type0(images, bias, 4, np.random.default_rng(1)))


def test_a_damaged_palette_file_is_one_line(tmp_path):
    from datasets.mnist_io import CorruptDataError

    (tmp_path / "garbage.th").write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptDataError, match="LfF palette: checkpoint .* is truncated or corrupt"):
        load_lff_palette(tmp_path / "garbage.th")
    torch.save(torch.zeros(4, 3), tmp_path / "short.th")
    with pytest.raises(CorruptDataError, match=r"holds Tensor \(4, 3\), not 10x3 colours"):
        load_lff_palette(tmp_path / "short.th")
    torch.save(torch.full((10, 3), 0.5), tmp_path / "grey.th")
    assert np.array_equal(load_lff_palette(tmp_path / "grey.th"), np.full((10, 3), 0.5, dtype=np.float32))
