"""Model registry: ``MODELS[name](**kwargs)`` builds a network returning ``(logits, features)``."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from models.action_models import ResNet3D
from models.imagenet_models import BagNet18, ResNet18
from models.mnist_models import SimpleConvNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    "SimpleConvNet": SimpleConvNet,
    "ResNet18": ResNet18,
    "BagNet18": BagNet18,
    "ResNet3D": ResNet3D,
}
