"""DisEnt / LfF networks (spec §4) and DisEnt's feature swap (spec §5.4, Eq. 3).

Vanilla models map images to logits and expose ``extract(x)`` (the feature before the classifier). DisEnt models
are the encoders E_i / E_b: ``forward(x) = extract(x)`` gives z, and ``fc`` is the branch classifier on the
concatenation ``[z_i ; z_b]`` (intrinsic first) of twice the feature width. Parameter names follow the original
code (``feature``/``classifier`` for the MLP, torchvision names plus ``fc`` for ResNet18), so the original
checkpoints' ``state_dict`` keys match.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

MLP_INPUT_DIM = 3 * 28 * 28
MLP_FEATURE_DIM = 16
RESNET18_FEATURE_DIM = 512


def _mlp_feature_stack() -> nn.Sequential:
    return nn.Sequential(nn.Linear(MLP_INPUT_DIM, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                         nn.Linear(100, MLP_FEATURE_DIM), nn.ReLU())


def _flatten_and_scale(x: Tensor, divide_by_255: bool = True) -> Tensor:
    """Flatten and divide by 255 as the original MLPs do, on inputs already in [0, 1] (spec §9); with
    ``divide_by_255=False`` the inputs are taken as already divided (:class:`tasks.disent.DisEntTask` divides its
    stored Colored MNIST once at load time: the same float values, without a division per step and network)."""
    flat = x.reshape(x.shape[0], -1)
    return flat / 255 if divide_by_255 else flat


class VanillaMLP(nn.Module):
    """DisEnt's vanilla CMNIST ``MLP``: 2352 -> 100 -> 100 -> 16 (ReLU each) -> ``classifier`` Linear(16, C).

    ``divide_by_255`` (default, as the original code on [0, 1] inputs); False for inputs divided beforehand."""

    def __init__(self, num_classes: int = 10, divide_by_255: bool = True):
        super().__init__()
        self.divide_by_255 = divide_by_255
        self.feature = _mlp_feature_stack()
        self.classifier = nn.Linear(MLP_FEATURE_DIM, num_classes)

    def extract(self, x: Tensor) -> Tensor:
        return self.feature(_flatten_and_scale(x, self.divide_by_255))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.extract(x))


class LfFMLP(nn.Module):
    """LfF's Colored MNIST ``MLP``: 2352 -> 100 -> 100 -> 100 (ReLU each) -> ``classifier`` Linear(100, C).

    ``divide_by_255`` (default, as the original code on [0, 1] inputs); False feeds the inputs as they are (inputs
    divided beforehand, or the comparison matrix's Biased MNIST, whose inputs are in [-1, 1] and whose weight decay
    would otherwise keep the weights needed by 1/255-scaled inputs from growing)."""

    def __init__(self, num_classes: int = 10, divide_by_255: bool = True):
        super().__init__()
        self.divide_by_255 = divide_by_255
        self.feature = nn.Sequential(nn.Linear(MLP_INPUT_DIM, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                                     nn.Linear(100, 100), nn.ReLU())
        self.classifier = nn.Linear(100, num_classes)

    def extract(self, x: Tensor) -> Tensor:
        return self.feature(_flatten_and_scale(x, self.divide_by_255))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.extract(x))


class DisEntMLP(nn.Module):
    """``MLP_DISENTANGLE``: the same 16-d feature stack as encoder and ``fc`` = Linear(32, C) on ``[z_i ; z_b]``
    (``divide_by_255`` as :class:`VanillaMLP`)."""

    feature_dim = MLP_FEATURE_DIM

    def __init__(self, num_classes: int = 10, divide_by_255: bool = True):
        super().__init__()
        self.divide_by_255 = divide_by_255
        self.feature = _mlp_feature_stack()
        self.fc = nn.Linear(2 * MLP_FEATURE_DIM, num_classes)

    def extract(self, x: Tensor) -> Tensor:
        return self.feature(_flatten_and_scale(x, self.divide_by_255))

    def forward(self, x: Tensor) -> Tensor:
        return self.extract(x)


class VanillaResNet18(ResNet):
    """torchvision ``resnet18(weights=None)`` (ImageNet stem, random init), ``fc`` = Linear(512, C)."""

    def __init__(self, num_classes: int = 10):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)

    def extract(self, x: Tensor) -> Tensor:
        """The 512-d globally average-pooled feature (safe for a batch of one)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))  # torchvision's AdaptiveAvgPool2d has no deterministic CUDA backward

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.extract(x))


class DisEntResNet18(VanillaResNet18):
    """``resnet_DISENTANGLE``: the ResNet18 encoder (512-d z) with ``fc`` = Linear(1024, C) on ``[z_i ; z_b]``."""

    feature_dim = RESNET18_FEATURE_DIM

    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)
        self.fc = nn.Linear(2 * RESNET18_FEATURE_DIM, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.extract(x)


def branch_inputs(z_intrinsic: Tensor, z_bias: Tensor) -> tuple[Tensor, Tensor]:
    """DisEnt's classifier inputs: ``z_conflict = [z_i ; sg(z_b)]`` for C_i and ``z_align = [sg(z_i) ; z_b]`` for C_b.

    Gradients never reach E_b through C_i nor E_i through C_b.
    """
    return (torch.cat([z_intrinsic, z_bias.detach()], dim=1),
            torch.cat([z_intrinsic.detach(), z_bias], dim=1))


class SwappedFeatures(NamedTuple):
    """Feature-swapped batch of DisEnt Eq. 3: sample k pairs its own z_i with z_b of sample ``permutation[k]``."""

    z_conflict: Tensor
    z_align: Tensor
    target_intrinsic: Tensor
    target_bias: Tensor
    bias_label: Tensor | None
    permutation: Tensor


def feature_swap(z_intrinsic: Tensor, z_bias: Tensor, target: Tensor, bias_label: Tensor | None = None,
                 permutation: Tensor | None = None, generator: torch.Generator | None = None) -> SwappedFeatures:
    """Permute the bias features within the batch (``z~_b = z_b[pi]``) and build both branches' inputs.

    The intrinsic side ``[z_i ; sg(z~_b)]`` keeps the original label ``y`` (and its original weight W); the bias
    side ``[sg(z_i) ; z~_b]`` takes the donor's label ``y[pi]`` (and bias attribute ``b[pi]``). ``pi`` is drawn with
    ``generator`` unless given; self-pairs and same-class pairs are not excluded (as in the original code).
    """
    if permutation is None:
        permutation = torch.randperm(len(z_bias), generator=generator).to(z_bias.device)
    z_conflict, z_align = branch_inputs(z_intrinsic, z_bias[permutation])
    return SwappedFeatures(z_conflict, z_align, target, target[permutation],
                           None if bias_label is None else bias_label[permutation], permutation)


class DisEntPredictor(nn.Module):
    """DisEnt's evaluated classifier (spec §6): ``C_i([E_i(x) ; E_b(x)])``."""

    def __init__(self, intrinsic: nn.Module, bias: nn.Module):
        super().__init__()
        self.intrinsic = intrinsic
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        return self.intrinsic.fc(torch.cat([self.intrinsic.extract(x), self.bias.extract(x)], dim=1))


DISENT_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": VanillaMLP,
    "mlp_lff": LfFMLP,
    "mlp_disentangle": DisEntMLP,
    "resnet18": VanillaResNet18,
    "resnet18_disentangle": DisEntResNet18,
}
