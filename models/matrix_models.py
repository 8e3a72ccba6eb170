"""Networks of the comparison matrix (main_matrix.py): one architecture family per benchmark, shared by all methods.

* f-networks for the f/g trainer (ReBias, LearnedMixin, RUBi, Vanilla): :class:`WithFeatures` turns a classifier
  with ``extract(x)`` (the DisEnt/LfF MLPs) into a network returning ``(logits, features)``.
* the colour-only biased network g of the MLP family, :class:`ColourHistogramNet`: a colour histogram (a fixed 1x1
  convolution and global average pooling, the idea of ReBias' g, SimpleConvNet with 1x1 kernels) and an MLP. It
  sees every pixel's colour but not where the pixel is: permuting pixel positions leaves its output unchanged.
* SimpleConvNet-based networks of the convolutional family for LfF (:class:`ConvClassifier`, logits only) and DisEnt
  (:class:`ConvEncoder`, the 128-d encoder with ``fc`` on ``[z_i ; z_b]``).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from models.disent_models import DISENT_MODELS, LfFMLP
from models.mnist_models import SimpleConvNet

HISTOGRAM_LEVELS = 8
HISTOGRAM_HIDDEN = 64


class WithFeatures(nn.Module):
    """``(classifier(z), z)`` with ``z = net.extract(x)``: the penultimate features (post-ReLU) feed HSIC and the
    comparison criteria. ``net`` keeps its own parameter names under ``net.``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.classifier = net.classifier if hasattr(net, "classifier") else net.fc
        self.feature_dim = self.classifier.in_features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.net.extract(x)
        return self.classifier(features), features


class ColourHistogramNet(nn.Module):
    """The colour-only biased network g of the MLP family: the joint RGB histogram of the image (``levels`` levels
    per channel, ``levels**3`` bins, pixel counts divided by the number of pixels), then ``Linear -> ReLU`` to a
    ``hidden``-d feature and a linear classifier; ``forward`` returns ``(logits, features)``.

    The histogram is a fixed one-hot 1x1 convolution followed by global average pooling (ReBias' g, SimpleConvNet
    with 1x1 kernels, learns that first layer instead): a function of the multiset of pixel colours, blind to shape
    by construction, and about as cheap as the MLP f on a CPU (a learned 1x1 convolution over 784 pixels costs
    10-30x more). ``value_range`` is the input range the task feeds (Biased MNIST: [-1, 1], Colored MNIST: [0, 1]);
    no gradient flows to the input (g's parameters do not need one)."""

    def __init__(self, num_classes: int = 10, value_range: tuple[float, float] = (0.0, 1.0),
                 levels: int = HISTOGRAM_LEVELS, hidden: int = HISTOGRAM_HIDDEN):
        super().__init__()
        self.low, self.high = value_range
        self.levels = levels
        self.hidden = nn.Sequential(nn.Linear(levels ** 3, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden

    def histogram(self, x: Tensor) -> Tensor:
        """``(N, levels**3)``: the share of the image's pixels in each quantised (R, G, B) bin."""
        unit = (x.detach() - self.low) / (self.high - self.low)
        quantised = (unit * self.levels).long().clamp_(0, self.levels - 1)
        bins = (quantised[:, 0] * self.levels + quantised[:, 1]) * self.levels + quantised[:, 2]
        bins = bins.flatten(1)
        counts = torch.zeros(x.shape[0], self.levels ** 3, device=x.device, dtype=x.dtype)
        counts.scatter_add_(1, bins, torch.ones_like(bins, dtype=x.dtype))
        return counts / bins.shape[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.hidden(self.histogram(x))
        return self.fc(features), features


class ConvClassifier(SimpleConvNet):
    """SimpleConvNet (7x7 kernels) returning logits only, with ``extract``: LfF's networks in the conv family."""

    def extract(self, x: Tensor) -> Tensor:
        return self.extractor(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.fc(self.extract(x))


class ConvEncoder(ConvClassifier):
    """DisEnt's encoder in the conv family: SimpleConvNet's 128-d pooled feature as z, ``fc`` = Linear(256, C) on
    ``[z_i ; z_b]``."""

    def __init__(self, num_classes: int = 10, kernel_size: int = 7):
        super().__init__(num_classes, kernel_size=kernel_size)
        self.fc = nn.Linear(2 * self.fc.in_features, num_classes)

    @property
    def feature_dim(self) -> int:
        return self.fc.in_features // 2

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.extract(x)


class LfFMLPEncoder(nn.Module):
    """LfF's 100-100-100 MLP as a DisEnt encoder: z is its 100-d feature, ``fc`` = Linear(200, C) on
    ``[z_i ; z_b]`` (the DisEnt variant of the LfF protocol's network; ``divide_by_255`` as :class:`LfFMLP`)."""

    def __init__(self, num_classes: int = 10, divide_by_255: bool = True):
        super().__init__()
        self.net = LfFMLP(num_classes, divide_by_255)
        self.feature_dim = self.net.classifier.in_features
        del self.net.classifier
        self.fc = nn.Linear(2 * self.feature_dim, num_classes)

    def extract(self, x: Tensor) -> Tensor:
        return self.net.extract(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.extract(x)


MATRIX_MODELS: dict[str, Callable[[int], nn.Module]] = {
    **{name: DISENT_MODELS[name] for name in ("mlp", "mlp_lff", "mlp_disentangle")},
    "mlp_lff_disentangle": LfFMLPEncoder,
    "mlp_lff_unit": partial(LfFMLP, divide_by_255=False),
    "mlp_lff_unit_disentangle": partial(LfFMLPEncoder, divide_by_255=False),
    "colour_histogram": ColourHistogramNet,
    "simple_conv": ConvClassifier,
    "simple_conv_disentangle": ConvEncoder,
}
"""The networks a family names (utils/matrix.py ``FAMILIES``), by name: ``MATRIX_MODELS[name](num_classes)``."""
