import math

import numpy as np
import pytest
import torch

from datasets.colour_mnist import COLOUR_MAP, ColourBiasedMNIST, assign_bias_labels, colourise, normalise_uint8


def balanced_targets(per_class: int = 1000) -> torch.Tensor:
    return torch.arange(10).repeat_interleave(per_class)


@pytest.mark.parametrize("rho", [0.999, 0.997, 0.995, 0.99, 0.5])
def test_aligned_fraction_per_class(rho):
    targets = torch.cat([torch.full((n,), c) for c, n in enumerate(range(900, 1000, 10))])
    bias = assign_bias_labels(targets, rho, 9, np.random.default_rng(0))
    for c in range(10):
        members = bias[targets == c]
        assert int((members == c).sum()) == int(len(members) * rho)


def test_conflicting_colours_follow_chunk_rule():
    targets = balanced_targets(1000)
    bias = assign_bias_labels(targets, 0.9, 9, np.random.default_rng(1))
    for c in range(10):
        conflicting = bias[(targets == c) & (bias != c)]
        counts = torch.bincount(conflicting, minlength=10)
        assert counts[c] == 0
        assert sorted(counts[counts > 0].tolist()) == [4] + [12] * 8  # 100 in consecutive chunks of ceil(100/9)=12


def test_few_confusing_labels_restricts_colours():
    targets = balanced_targets(300)
    bias = assign_bias_labels(targets, 0.7, 2, np.random.default_rng(2))
    for c in range(10):
        assert set(bias[(targets == c) & (bias != c)].tolist()) == {(c + 1) % 10, (c + 2) % 10}


def test_unbiased_set_near_uniform_over_colours():
    targets = balanced_targets(980)
    bias = assign_bias_labels(targets, 0.1, 9, np.random.default_rng(3))
    for c in range(10):
        counts = torch.bincount(bias[targets == c], minlength=10).float()
        assert counts[c] == 98
        assert counts.min() >= 98 and counts.max() <= 98 + math.ceil(882 / 9)
        assert (counts / counts.sum() - 0.1).abs().max() < 0.01


def test_rho_zero_and_one():
    targets = balanced_targets(50)
    assert (assign_bias_labels(targets, 1.0, 9, np.random.default_rng(0)) == targets).all()
    assert (assign_bias_labels(targets, 0.0, 9, np.random.default_rng(0)) != targets).all()
    with pytest.raises(ValueError):
        assign_bias_labels(targets, 1.5, 9, np.random.default_rng(0))
    with pytest.raises(ValueError):
        assign_bias_labels(targets, 0.5, 10, np.random.default_rng(0))


def test_assignment_is_seeded():
    targets = balanced_targets(100)
    first = assign_bias_labels(targets, 0.9, 9, np.random.default_rng(7))
    assert torch.equal(first, assign_bias_labels(targets, 0.9, 9, np.random.default_rng(7)))
    assert not torch.equal(first, assign_bias_labels(targets, 0.9, 9, np.random.default_rng(8)))


def test_colourise_binarises_and_colours_background():
    digits = torch.zeros(2, 4, 4, dtype=torch.uint8)
    digits[0, 1, 1] = 1
    digits[1, 2, 3] = 200
    images = colourise(digits, torch.tensor([3, 9]))
    assert images.shape == (2, 3, 4, 4) and images.dtype == torch.uint8
    assert images[0, :, 1, 1].tolist() == [255, 255, 255]
    assert images[1, :, 2, 3].tolist() == [255, 255, 255]
    assert images[0, :, 0, 0].tolist() == [225, 225, 0]
    assert (images[1, :, 0, 0] == COLOUR_MAP[9]).all()
    assert int((images[0] == 255).all(dim=0).sum()) == 1


def test_normalisation_range():
    x = normalise_uint8(torch.tensor([0, 255], dtype=torch.uint8))
    assert x.tolist() == [-1.0, 1.0]


def test_dataset_from_disk(fake_mnist_root):
    train = ColourBiasedMNIST(fake_mnist_root, train=True, rho=0.99, seed=0)
    assert train.images.shape == (2000, 3, 28, 28) and train.images.dtype == torch.uint8
    assert len(train) == 2000
    assert (train.biases == train.targets).float().mean() > 0.97
    again = ColourBiasedMNIST(fake_mnist_root, train=True, rho=0.99, seed=0)
    assert torch.equal(train.images, again.images)
