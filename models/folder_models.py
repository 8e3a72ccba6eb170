"""Networks of the folder task (tasks/folder.py), chosen by ``--f`` and ``--g``.

f (the de-biased network; also LfF's two networks and DisEnt's two encoders) is built in two forms: a classifier
returning logits with ``extract(x)`` (LfF, Vanilla of the step methods) or a DisEnt encoder returning z with ``fc``
on ``[z_i ; z_b]``; the f/g trainer wraps the classifier in :class:`models.matrix_models.WithFeatures`. g (the
biased network of ReBias, LearnedMixin and RUBi) returns ``(logits, features)``.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck, ResNet

from models.disent_models import DISENT_MODELS, DisEntMLP, VanillaMLP, VanillaResNet18
from models.imagenet_models import BagNet18
from models.matrix_models import ColourHistogramNet, ConvClassifier, ConvEncoder
from models.mnist_models import SimpleConvNet

RESNET50_FEATURE_DIM = 2048


class VanillaResNet50(VanillaResNet18):
    """torchvision ``resnet50(weights=None)`` (parameter names as torchvision's), ``fc`` = Linear(2048, C)."""

    def __init__(self, num_classes: int = 10):
        ResNet.__init__(self, Bottleneck, [3, 4, 6, 3], num_classes=num_classes)


class DisEntResNet50(VanillaResNet50):
    """The ResNet-50 encoder (2048-d z) with ``fc`` = Linear(4096, C) on ``[z_i ; z_b]``."""

    feature_dim = RESNET50_FEATURE_DIM

    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)
        self.fc = nn.Linear(2 * RESNET50_FEATURE_DIM, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.extract(x)


F_NETWORKS: dict[str, tuple[Callable[[int], nn.Module], Callable[[int], nn.Module]]] = {
    "resnet18": (DISENT_MODELS["resnet18"], DISENT_MODELS["resnet18_disentangle"]),
    "resnet50": (VanillaResNet50, DisEntResNet50),
    "simple_conv": (ConvClassifier, ConvEncoder),
    "mlp": (partial(VanillaMLP, divide_by_255=False), partial(DisEntMLP, divide_by_255=False)),
}
"""``--f``: (classifier, DisEnt encoder) builders taking the number of classes. ``mlp`` (DisEnt's 100-100-16)
reads 3x28x28 images; SimpleConvNet (7x7 kernels, no pooling) suits small images."""


class Denormalised(nn.Module):
    """``net(x * std + mean)``: feeds a network made for [0, 1] inputs from standardised ones."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", Tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", Tensor(std).view(1, -1, 1, 1), persistent=False)
        self.feature_dim = feature_dim_of(net)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.net(x * self.std + self.mean)


def feature_dim_of(net: nn.Module) -> int:
    """The width of the features a ``(logits, features)`` network returns (pooled features)."""
    return getattr(net, "feature_dim", None) or net.fc.in_features


G_NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "bagnet": lambda num_classes, feature_pos: BagNet18(num_classes, feature_pos=feature_pos),
    "colour_histogram": lambda num_classes, feature_pos: ColourHistogramNet(num_classes, value_range=(0.0, 1.0)),
    "simple_conv_k1": lambda num_classes, feature_pos: SimpleConvNet(num_classes, kernel_size=1,
                                                                     feature_pos=feature_pos),
}
"""``--g``: BagNet-18 (ReBias' ImageNet g: 5x5-pixel receptive field), the colour histogram g of the comparison
matrix (on [0, 1] inputs) or SimpleConvNet with 1x1 kernels (ReBias' Biased MNIST g); ``(num_classes,
feature_pos)`` -> network returning ``(logits, features)``."""
