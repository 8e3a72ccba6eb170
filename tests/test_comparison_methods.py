"""RUBi and LearnedMixin outer criteria: values on hand-computed examples, gradient routing, shape checks."""
from __future__ import annotations

import math

import pytest
import torch

from criterions.comparison_methods import LearnedMixin, RUBi, grad_mul_const


def _log_softmax_row(row: list[float]) -> list[float]:
    top = max(row)
    log_norm = top + math.log(sum(math.exp(value - top) for value in row))
    return [value - log_norm for value in row]


def _cross_entropy(logits: list[list[float]], labels: list[int]) -> float:
    return -sum(_log_softmax_row(row)[label] for row, label in zip(logits, labels)) / len(labels)


def _sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


def _softplus(value: float) -> float:
    return math.log1p(math.exp(value))


def _entropy(row: list[float]) -> float:
    return -sum(math.exp(log_p) * log_p for log_p in _log_softmax_row(row))


F_FEAT = [[1.0, -2.0], [0.5, 3.0], [-1.0, 0.0]]
G_FEAT = [[0.2, 1.0], [-1.5, 0.5], [2.0, -0.3]]
F_PRED = [[2.0, -1.0, 0.5], [0.0, 1.5, -0.5], [-1.0, 0.3, 2.2]]
G_PRED = [[3.0, 0.0, -1.0], [0.5, 2.0, 0.1], [-0.4, 0.0, 1.0]]
LABELS = [0, 2, 1]
RUBI_WEIGHT = [[0.5, -1.0], [1.0, 0.25], [-0.3, 0.7]]
RUBI_BIAS = [0.1, -0.2, 0.3]
MIXIN_WEIGHT = [0.4, -0.3]
MIXIN_BIAS = 0.2


def _tensors(requires_grad: bool = True) -> dict[str, torch.Tensor]:
    tensors = {name: torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)
               for name, values in (("f_feat", F_FEAT), ("g_feat", G_FEAT), ("f_pred", F_PRED), ("g_pred", G_PRED))}
    tensors["labels"] = torch.tensor(LABELS)
    return tensors


def _rubi(weight: float = 1.0) -> RUBi:
    criterion = RUBi(feat_dim=2, num_classes=3, question_loss_weight=weight, sigma_x=1.0, algorithm="unbiased").double()
    with torch.no_grad():
        criterion.fc.weight.copy_(torch.tensor(RUBI_WEIGHT))
        criterion.fc.bias.copy_(torch.tensor(RUBI_BIAS))
    return criterion


def _mixin(entropy_penalty: float = 0.36) -> LearnedMixin:
    criterion = LearnedMixin(feat_dim=2, num_classes=3, entropy_penalty=entropy_penalty, sigma_y=1.0).double()
    with torch.no_grad():
        criterion.fc.weight.copy_(torch.tensor([MIXIN_WEIGHT]))
        criterion.fc.bias.fill_(MIXIN_BIAS)
    return criterion


def _expected_rubi(weight: float) -> float:
    question = [[sum(w * x for w, x in zip(RUBI_WEIGHT[k], feat)) + RUBI_BIAS[k] for k in range(3)]
                for feat in G_FEAT]
    fused = [[f * _sigmoid(q) for f, q in zip(f_row, q_row)] for f_row, q_row in zip(F_PRED, question)]
    return _cross_entropy(fused, LABELS) + weight * _cross_entropy(question, LABELS)


def _expected_mixin(entropy_penalty: float) -> float:
    scales = [_softplus(sum(w * x for w, x in zip(MIXIN_WEIGHT, feat)) + MIXIN_BIAS) for feat in F_FEAT]
    scaled = [[scale * g for g in g_row] for scale, g_row in zip(scales, G_PRED)]
    combined = [[f + b for f, b in zip(f_row, b_row)] for f_row, b_row in zip(F_PRED, scaled)]
    mean_entropy = sum(_entropy(row) for row in scaled) / len(scaled)
    return _cross_entropy(combined, LABELS) + entropy_penalty * mean_entropy


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_rubi_matches_hand_computation(weight: float) -> None:
    inputs = _tensors()
    loss = _rubi(weight)(inputs["f_feat"], inputs["g_feat"], labels=inputs["labels"], f_pred=inputs["f_pred"],
                         g_pred=inputs["g_pred"])
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(_expected_rubi(weight), abs=1e-6)


def test_rubi_gradients_stop_at_the_bias_features() -> None:
    inputs = _tensors()
    criterion = _rubi()
    loss = criterion(inputs["f_feat"], inputs["g_feat"], labels=inputs["labels"], f_pred=inputs["f_pred"],
                     g_pred=inputs["g_pred"])
    loss.backward()
    assert inputs["g_feat"].grad is None or torch.count_nonzero(inputs["g_feat"].grad) == 0
    assert inputs["g_pred"].grad is None
    assert torch.count_nonzero(inputs["f_pred"].grad) > 0
    assert torch.count_nonzero(criterion.fc.weight.grad) > 0
    assert torch.count_nonzero(criterion.fc.bias.grad) > 0


def test_rubi_flattens_spatial_bias_features() -> None:
    criterion = RUBi(feat_dim=8, num_classes=4)
    loss = criterion(torch.randn(5, 8), torch.randn(5, 2, 2, 2), labels=torch.arange(5) % 4,
                     f_pred=torch.randn(5, 4))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("entropy_penalty", [0.36, 1.5])
def test_learned_mixin_matches_hand_computation(entropy_penalty: float) -> None:
    inputs = _tensors()
    loss = _mixin(entropy_penalty)(inputs["f_feat"], inputs["g_feat"], labels=inputs["labels"],
                                   f_pred=inputs["f_pred"], g_pred=inputs["g_pred"])
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(_expected_mixin(entropy_penalty), abs=1e-6)


def test_learned_mixin_without_entropy_penalty_is_plain_mixin() -> None:
    inputs = _tensors()
    loss = _mixin(0.0)(inputs["f_feat"], inputs["g_feat"], labels=inputs["labels"], f_pred=inputs["f_pred"],
                       g_pred=inputs["g_pred"])
    assert loss.item() == pytest.approx(_expected_mixin(0.0), abs=1e-6)
    assert loss.item() < _expected_mixin(0.36)


def test_learned_mixin_gradients_skip_the_bias_model() -> None:
    inputs = _tensors()
    g_pred_before = inputs["g_pred"].detach().clone()
    criterion = _mixin()
    loss = criterion(inputs["f_feat"], inputs["g_feat"], labels=inputs["labels"], f_pred=inputs["f_pred"],
                     g_pred=inputs["g_pred"])
    loss.backward()
    assert inputs["g_pred"].grad is None
    assert inputs["g_feat"].grad is None
    assert torch.count_nonzero(inputs["f_feat"].grad) > 0
    assert torch.count_nonzero(inputs["f_pred"].grad) > 0
    assert torch.count_nonzero(criterion.fc.weight.grad) > 0
    assert torch.equal(inputs["g_pred"].detach(), g_pred_before)


def test_criteria_expose_their_fc_parameters() -> None:
    assert [tuple(p.shape) for p in RUBi(feat_dim=16, num_classes=9).parameters()] == [(9, 16), (9,)]
    assert [tuple(p.shape) for p in LearnedMixin(feat_dim=16, num_classes=9).parameters()] == [(1, 16), (1,)]


def test_rubi_rejects_mismatched_shapes() -> None:
    labels = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="num_classes=10"):
        RUBi(feat_dim=512)(torch.randn(4, 512), torch.randn(4, 512), labels=labels, f_pred=torch.randn(4, 9))
    with pytest.raises(ValueError, match="feat_dim=128"):
        RUBi()(torch.randn(4, 128), torch.randn(4, 512), labels=labels, f_pred=torch.randn(4, 10))


def test_learned_mixin_rejects_mismatched_shapes() -> None:
    labels = torch.zeros(4, dtype=torch.long)
    criterion = LearnedMixin(feat_dim=512, num_classes=10)
    with pytest.raises(ValueError, match="g_pred"):
        criterion(torch.randn(4, 512), None, labels=labels, f_pred=torch.randn(4, 10), g_pred=torch.randn(4, 9))
    with pytest.raises(ValueError, match="f_pred"):
        criterion(torch.randn(4, 512), None, labels=labels, f_pred=torch.randn(4, 9), g_pred=torch.randn(4, 10))
    with pytest.raises(ValueError, match="feat_dim=512"):
        criterion(torch.randn(4, 128), None, labels=labels, f_pred=torch.randn(4, 10), g_pred=torch.randn(4, 10))


def test_grad_mul_const_scales_gradient() -> None:
    x = torch.ones(3, requires_grad=True)
    (grad_mul_const(x, 0.25) * 2.0).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 0.5))
