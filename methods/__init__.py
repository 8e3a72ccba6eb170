"""Method registry: ``METHODS[name](config, task, device, autocast)`` builds a method."""
from __future__ import annotations

from methods.base import Method, Phase
from methods.disent import DisEnt, LfF, VanillaDisEnt
from methods.rebias import ReBias
from methods.rebias_seeds import SeedStackedReBias

METHODS: dict[str, type[Method]] = {
    "rebias": ReBias,
    "rebias_seeds": SeedStackedReBias,
    "vanilla_disent": VanillaDisEnt,
    "lff": LfF,
    "disent": DisEnt,
}

__all__ = ["METHODS", "Method", "Phase"]
