"""Optimiser and learning-rate scheduler factories (``--optim``, ``--scheduler``)."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from adamp import AdamP
from torch import nn

OPTIMIZERS = {"Adam": torch.optim.Adam, "AdamP": AdamP}
SCHEDULERS = ("StepLR", "CosineAnnealingLR", "none")


def build_optimizer(name: str, params: Iterable[nn.Parameter], lr: float, weight_decay: float,
                    fused: bool = False) -> torch.optim.Optimizer:
    """Adam (coupled L2 weight decay, as torch's Adam) or AdamP (Heo et al. 2021), other settings at defaults.

    ``fused`` selects torch's fused Adam kernel (same update rule, one kernel for all parameters instead of about
    ten per parameter tensor; results equal up to float rounding): the DisEnt-family MLPs spend about half of their
    step in the per-tensor Adam otherwise."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimiser '{name}', expected one of {sorted(OPTIMIZERS)}")
    if fused and name == "Adam":
        return torch.optim.Adam(list(params), lr=lr, weight_decay=weight_decay, fused=True)
    return OPTIMIZERS[name](list(params), lr=lr, weight_decay=weight_decay)


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, n_epochs: int, lr_step_size: int,
                    gamma: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """StepLR(step_size=lr_step_size, gamma), CosineAnnealingLR(T_max=n_epochs) or ``none`` (a constant learning
    rate); stepped once per epoch."""
    if name == "StepLR":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step_size, gamma=gamma)
    if name == "CosineAnnealingLR":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(n_epochs, 1))
    if name == "none":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ValueError(f"unknown scheduler '{name}', expected one of {SCHEDULERS}")
