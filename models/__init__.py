"""Model registry: ``MODELS[name](**kwargs)`` builds a network returning ``(logits, features)``."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from models.mnist_models import SimpleConvNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "SimpleConvNet": SimpleConvNet,
}
