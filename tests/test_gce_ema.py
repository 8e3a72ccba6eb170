"""GCE against its formula, the per-sample loss EMA on a hand example, and the relative difficulty."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from criterions.gce import GeneralizedCELoss
from criterions.loss_ema import PerSampleLossEMA, relative_difficulty


@pytest.mark.parametrize("q", [0.7, 0.3])
def test_gce_value_is_ce_times_q_times_detached_p_y_to_the_q(q):
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    p_y = F.softmax(logits, 1)[torch.arange(6), targets]
    expected = -torch.log(p_y) * q * p_y ** q
    assert torch.allclose(GeneralizedCELoss(q=q)(logits, targets), expected, atol=1e-6)
    assert torch.allclose(GeneralizedCELoss(q=q, reduction="mean")(logits, targets), expected.mean(), atol=1e-6)


@pytest.mark.parametrize("q", [0.7, 0.3])
def test_gce_gradient_is_q_times_the_gce_gradient(q):
    torch.manual_seed(1)
    logits = torch.randn(5, 3, requires_grad=True)
    targets = torch.tensor([0, 2, 1, 1, 0])
    GeneralizedCELoss(q=q)(logits, targets).sum().backward()
    probabilities = F.softmax(logits.detach(), 1)
    p_y = probabilities[torch.arange(5), targets]
    hand = q * p_y[:, None] ** q * (probabilities - F.one_hot(targets, 3).float())
    assert torch.allclose(logits.grad, hand, atol=1e-6)
    reference = logits.detach().clone().requires_grad_(True)
    p_y_ref = F.softmax(reference, 1)[torch.arange(5), targets]
    ((1 - p_y_ref ** q) / q).sum().backward()
    assert torch.allclose(logits.grad, q * reference.grad, atol=1e-6)


def test_gce_q_matters_and_is_validated():
    logits, targets = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    assert not torch.allclose(GeneralizedCELoss(0.7)(logits, targets), GeneralizedCELoss(0.3)(logits, targets))
    with pytest.raises(ValueError):
        GeneralizedCELoss(q=0.0)
    with pytest.raises(FloatingPointError):
        GeneralizedCELoss(check_finite=True)(torch.tensor([[float("nan"), 0.0]]), targets)


def test_ema_update_and_class_wise_max_normalisation_by_hand():
    ema = PerSampleLossEMA(torch.tensor([0, 0, 1, 1, 1]), num_classes=2, alpha=0.7)
    ema.update(torch.tensor([2.0, 4.0]), torch.tensor([0, 2]))
    assert torch.allclose(ema.values, torch.tensor([2.0, 0.0, 4.0, 0.0, 0.0]))  # first visit stores the loss
    ema.update(torch.tensor([1.0, 1.0]), torch.tensor([0, 1]))
    # p0 = 0.7 * 2 + (1 - 0.7) * 1 = 1.7; p1 first visit = 1
    assert torch.allclose(ema.values, torch.tensor([1.7, 1.0, 4.0, 0.0, 0.0]))
    assert torch.allclose(ema.class_max(), torch.tensor([1.7, 4.0]))
    assert torch.allclose(ema.normalised(torch.tensor([0, 1, 2, 3])), torch.tensor([1.0, 1 / 1.7, 1.0, 0.0]))
    ema.update(torch.tensor([10.0]), torch.tensor([3]))
    assert torch.allclose(ema.normalised(torch.tensor([2, 3])), torch.tensor([0.4, 1.0]))


def test_ema_unvisited_class_gives_zero_not_nan_and_state_round_trips():
    ema = PerSampleLossEMA(torch.tensor([0, 1, 1]), alpha=0.5)
    assert ema.num_classes == 2
    assert torch.equal(ema.normalised(torch.tensor([0, 1])), torch.zeros(2))
    ema.update(torch.tensor([3.0, 1.0]), torch.tensor([1, 2]))
    ema.update(torch.tensor([1.0]), torch.tensor([1]))
    assert torch.allclose(ema.values, torch.tensor([0.0, 2.0, 1.0]))
    restored = PerSampleLossEMA(torch.tensor([0, 1, 1]), alpha=0.9).to("cpu")
    restored.load_state_dict(ema.state_dict())
    assert restored.alpha == 0.5 and torch.equal(restored.values, ema.values)
    assert torch.equal(restored.updated, ema.updated)
    with pytest.raises(ValueError):
        PerSampleLossEMA(torch.tensor([1, 1, 0])).load_state_dict(ema.state_dict())


def test_relative_difficulty():
    weights = relative_difficulty(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0.0, 1.0, 0.5]))
    assert torch.allclose(weights, torch.tensor([1.0, 0.0, 0.5]), atol=1e-7)
    assert relative_difficulty(torch.zeros(1), torch.zeros(1)).item() == 0.0
    assert not relative_difficulty(torch.ones(1, requires_grad=True), torch.ones(1)).requires_grad
