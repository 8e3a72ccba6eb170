"""Generalized cross-entropy (Zhang & Sabuncu, 2018) as used by LfF (Eq. 2) and DisEnt for the biased branch."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GeneralizedCELoss(nn.Module):
    """Per-sample GCE, implemented as in LfF's code (spec §5.3).

    The paper's loss is ``GCE(p, y) = (1 - p_y^q) / q`` with gradient ``p_y^q * dCE``. The code (and this class)
    computes ``loss = CE(logits, y) * q * sg(p_y)^q`` (``sg`` = stop-gradient), whose gradient is
    ``q * p_y^q * dCE = q * dGCE``: the GCE gradient scaled by ``q``. The returned value is that surrogate, not
    ``(1 - p_y^q) / q``. ``reduction`` is ``'none'`` (per-sample, the default) or ``'mean'``; ``check_finite``
    raises like LfF when the softmax contains NaN (it synchronises with the device, so it is off by default).
    """

    def __init__(self, q: float = 0.7, reduction: str = "none", check_finite: bool = False):
        super().__init__()
        if q <= 0:
            raise ValueError(f"q must be positive, got {q}")
        if reduction not in ("none", "mean"):
            raise ValueError(f"reduction must be 'none' or 'mean', got '{reduction}'")
        self.q = q
        self.reduction = reduction
        self.check_finite = check_finite

    def forward(self, logits: Tensor, targets: Tensor, cross_entropy: Tensor | None = None) -> Tensor:
        """``cross_entropy``: the per-sample ``F.cross_entropy(logits, targets, reduction='none')`` when the
        caller has it already, to save computing it twice; it must keep its graph (a detached one would cut the
        loss' gradient)."""
        probabilities = F.softmax(logits, dim=1)
        if self.check_finite and not torch.isfinite(probabilities).all():
            raise FloatingPointError("GCE: softmax of the logits is not finite")
        target_probability = probabilities.gather(1, targets.unsqueeze(1)).squeeze(1).detach()
        if cross_entropy is None:
            cross_entropy = F.cross_entropy(logits, targets, reduction="none")
        loss = cross_entropy * (target_probability ** self.q) * self.q
        return loss.mean() if self.reduction == "mean" else loss

    def extra_repr(self) -> str:
        return f"q={self.q}, reduction='{self.reduction}'"
