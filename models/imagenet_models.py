"""Networks of ReBias' 9-class ImageNet experiment (spec §7): f = ResNet-18 (trained from scratch), g = BagNet-18,
a ResNet whose features see 5x5-pixel patches only (texture-like local evidence, no global shape).

Both return ``(logits, features)`` with the features chosen by ``feature_pos``: ``'post'`` the pooled 512-d
vector (the paper's setting), ``'pre'`` the last 512-channel map, ``'logits'`` the logits; ``logits_only=True``
returns the logits alone.
"""
from __future__ import annotations

import math

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

FEATURE_POSITIONS = ("pre", "post", "logits")


def _check_feature_pos(feature_pos: str) -> None:
    if feature_pos not in FEATURE_POSITIONS:
        raise ValueError(f"feature_pos must be one of {FEATURE_POSITIONS}, got '{feature_pos}'")


def _outputs(feature_map: Tensor, fc: nn.Linear, feature_pos: str, logits_only: bool
             ) -> Tensor | tuple[Tensor, Tensor]:
    pooled = feature_map.mean(dim=(2, 3))
    logits = fc(pooled)
    if logits_only:
        return logits
    return logits, {"pre": feature_map, "post": pooled, "logits": logits}[feature_pos]


class ResNet18(ResNet):
    """torchvision's ResNet-18 (7x7/2 stem, max-pool, [2, 2, 2, 2] basic blocks, Kaiming fan-out init), random init,
    with a ``num_classes``-way classifier on the 512-d average-pooled features."""

    def __init__(self, num_classes: int = 9, feature_pos: str = "post"):
        _check_feature_pos(feature_pos)
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.feature_pos = feature_pos

    def feature_map(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor, logits_only: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        return _outputs(self.feature_map(x), self.fc, self.feature_pos, logits_only)


class BagNetBlock(nn.Module):
    """BagNet's basic block (spec ``BasicBlock_``): ``k x k`` conv (k = 3 or 1, the block's stride, no padding) ->
    BN -> ReLU -> 1x1 conv -> BN, plus the (downsampled) identity, cropped at the bottom/right to the output size
    when the unpadded convolution shrank the map, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, kernel_size: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size, stride=stride, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        excess = identity.shape[-1] - out.shape[-1]
        if excess > 0:
            identity = identity[:, :, :-excess, :-excess]
        return self.relu(out + identity)


class BagNet18(nn.Module):
    """BagNet-18 of ReBias (spec ``BagNetDeep(BasicBlock_, [2, 2, 2, 2], strides=[2, 2, 2, 1],
    kernel3=[1, 0, 0, 0])``): stem 1x1 conv 3->64, 3x3 conv 64->64 without padding, BN (momentum 0.001), ReLU;
    four stages of 64/128/256/512 channels with strides 2, 2, 2, 1 in which only the first block of the first stage
    has a 3x3 kernel; average pooling over the whole map and a linear classifier. Every output location sees a
    5x5-pixel patch (224 px input: maps of 222, 110, 55, 28, 28 px)."""

    def __init__(self, num_classes: int = 9, feature_pos: str = "post", layers: tuple[int, ...] = (2, 2, 2, 2),
                 strides: tuple[int, ...] = (2, 2, 2, 1), kernel3: tuple[int, ...] = (1, 0, 0, 0)):
        super().__init__()
        _check_feature_pos(feature_pos)
        self.feature_pos = feature_pos
        self.conv1 = nn.Conv2d(3, 64, 1, padding=0, bias=False)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=0.001)
        self.relu = nn.ReLU(inplace=True)
        in_channels = 64
        stages = []
        for channels, blocks, stride, n_kernel3 in zip((64, 128, 256, 512), layers, strides, kernel3):
            stage = []
            for index in range(blocks):
                stage.append(BagNetBlock(in_channels, channels, stride if index == 0 else 1,
                                         kernel_size=3 if index < n_kernel3 else 1))
                in_channels = channels
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def feature_map(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv2(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor, logits_only: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        return _outputs(self.feature_map(x), self.fc, self.feature_pos, logits_only)
