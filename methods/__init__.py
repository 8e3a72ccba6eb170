"""Method registry: ``METHODS[name](config, task, device, autocast)`` builds a method."""
from __future__ import annotations

from methods.base import Method, Phase
from methods.rebias import ReBias

METHODS: dict[str, type[Method]] = {
    "rebias": ReBias,
}

__all__ = ["METHODS", "Method", "Phase"]
