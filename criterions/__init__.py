"""Criterion registry: ``get_criterion(name)(**config)`` builds any criterion by the name used on the command line."""
from __future__ import annotations

from torch import nn

from criterions.comparison_methods import LearnedMixin, RUBi
from criterions.hsic import MinusRbfHSIC, RbfHSIC

CRITERIA: dict[str, type[nn.Module]] = {
    "RbfHSIC": RbfHSIC,
    "MinusRbfHSIC": MinusRbfHSIC,
    "LearnedMixin": LearnedMixin,
    "RUBi": RUBi,
}


def get_criterion(name: str) -> type[nn.Module]:
    """Return the criterion class registered under ``name``."""
    if name not in CRITERIA:
        raise KeyError(f"unknown criterion '{name}', expected one of {sorted(CRITERIA)}")
    return CRITERIA[name]
