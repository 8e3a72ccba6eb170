"""Comparison de-biasing methods of ReBias Table 1: RUBi (Cadene et al. 2019) and LearnedMixin (Clark et al. 2019).

Both are *outer* criteria with the call signature used by the trainer,
``loss = criterion(f_feat, g_feat, labels=y, f_pred=f_logits, g_pred=g_logits)``, and the returned loss already
contains the classification term of f (the trainer adds no cross-entropy of its own for these methods). Their
``fc`` layers are parameters of the module, so ``criterion.parameters()`` can be handed to an optimiser.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from criterions.precision import full_precision


class GradMulConst(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``const`` in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, const: float) -> Tensor:
        ctx.const = const
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * ctx.const, None


def grad_mul_const(x: Tensor, const: float) -> Tensor:
    """``x`` unchanged, with its gradient scaled by ``const`` (0 blocks it)."""
    return GradMulConst.apply(x, const)


def _flatten(features: Tensor) -> Tensor:
    return features.reshape(features.shape[0], -1)


def _check_features(name: str, features: Tensor, feat_dim: int, batch_size: int) -> None:
    if features.shape[0] != batch_size:
        raise ValueError(f"{name} has batch size {features.shape[0]} but labels have {batch_size}")
    if _flatten(features).shape[1] != feat_dim:
        raise ValueError(f"{name} has {_flatten(features).shape[1]} features once flattened (shape "
                         f"{tuple(features.shape)}) but the criterion was built with feat_dim={feat_dim}")


def _check_logits(name: str, logits: Tensor, num_classes: int, batch_size: int) -> None:
    if logits.dim() != 2 or logits.shape[0] != batch_size or logits.shape[1] != num_classes:
        raise ValueError(f"{name} has shape {tuple(logits.shape)} but the criterion expects "
                         f"({batch_size}, {num_classes}) (batch size, num_classes={num_classes})")


def entropy(logits: Tensor) -> Tensor:
    """Per-sample entropy ``H(softmax(z)) = -sum_k p_k log p_k`` of the rows of ``logits``."""
    log_probs = F.log_softmax(logits, dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1)


class RUBi(nn.Module):
    """RUBi (Cadene et al., NeurIPS 2019): mask f's logits with a sigmoid of a classifier on the bias features.

    With ``q = fc(sg(flatten(g_feat)))`` where ``sg`` stops the gradient into the bias network::

        L = CE(f_pred * sigmoid(q), y) + question_loss_weight * CE(q, y)

    The question loss trains ``fc``; g is trained only by its own classification loss. At test time f is used alone.
    ``feat_dim`` is the width of g's features; ``g_feat_dim`` overrides it where f's width differs (main_matrix.py).
    """

    def __init__(self, feat_dim: int = 128, num_classes: int = 10, question_loss_weight: float = 1.0,
                 g_feat_dim: int | None = None, **_: object):
        super().__init__()
        self.feat_dim = int(g_feat_dim or feat_dim)
        self.num_classes = int(num_classes)
        self.question_loss_weight = float(question_loss_weight)
        self.fc = nn.Linear(self.feat_dim, self.num_classes)

    @full_precision
    def forward(self, f_feat: Tensor, g_feat: Tensor, labels: Tensor, f_pred: Tensor, **_: object) -> Tensor:
        batch_size = labels.shape[0]
        _check_features("g_feat", g_feat, self.feat_dim, batch_size)
        _check_logits("f_pred", f_pred, self.num_classes, batch_size)
        question_logits = self.fc(grad_mul_const(_flatten(g_feat), 0.0))
        fused_logits = f_pred * torch.sigmoid(question_logits)
        return F.cross_entropy(fused_logits, labels) + self.question_loss_weight * F.cross_entropy(
            question_logits, labels)

    def extra_repr(self) -> str:
        return f"question_loss_weight={self.question_loss_weight:g}"


class LearnedMixin(nn.Module):
    """LearnedMixin +H (Clark et al., EMNLP 2019) with a fixed bias model g.

    With a learned, input-dependent scale ``s(x) = softplus(w^T flatten(f_feat) + b)`` (N x 1) and
    ``b(x) = s(x) * g_pred`` (g_pred detached: the bias model is not trained by this loss)::

        L = CE(f_pred + b(x), y) + entropy_penalty * mean_n H(softmax(b(x_n)))

    ``entropy_penalty = 0`` gives plain LearnedMixin; the paper's default "+H" weight is 0.36. ``feat_dim`` is the
    width of f's features; ``f_feat_dim`` overrides it where g's width differs (main_matrix.py).
    """

    def __init__(self, feat_dim: int = 128, num_classes: int = 10, entropy_penalty: float = 0.36,
                 f_feat_dim: int | None = None, **_: object):
        super().__init__()
        self.feat_dim = int(f_feat_dim or feat_dim)
        self.num_classes = int(num_classes)
        self.entropy_penalty = float(entropy_penalty)
        self.fc = nn.Linear(self.feat_dim, 1)

    @full_precision
    def forward(self, f_feat: Tensor, g_feat: Tensor, labels: Tensor, f_pred: Tensor, g_pred: Tensor,
                **_: object) -> Tensor:
        batch_size = labels.shape[0]
        _check_features("f_feat", f_feat, self.feat_dim, batch_size)
        _check_logits("f_pred", f_pred, self.num_classes, batch_size)
        _check_logits("g_pred", g_pred, self.num_classes, batch_size)
        scale = F.softplus(self.fc(_flatten(f_feat)))
        scaled_bias = g_pred.detach() * scale
        loss = F.cross_entropy(f_pred + scaled_bias, labels)
        if self.entropy_penalty != 0.0:
            loss = loss + self.entropy_penalty * entropy(scaled_bias).mean()
        return loss

    def extra_repr(self) -> str:
        return f"entropy_penalty={self.entropy_penalty:g}"
