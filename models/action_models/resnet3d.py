"""ResNet3D of ReBias' action experiments (spec §7): a SlowFast-style single-pathway ResNet without non-local
blocks.

* stem: Conv3d [t0, 7, 7], stride [1, 2, 2] -> BN -> ReLU -> MaxPool3d [1, 3, 3], stride [1, 2, 2];
* stages s2..s5 of BasicTransform blocks ((2, 2, 2, 2) for depth 18): Conv3d [t, 3, 3] -> BN -> ReLU ->
  Conv3d [1, 3, 3] -> BN, plus the (projected) input, -> ReLU; spatial stride 2 in the first block of s3, s4, s5,
  no temporal stride; widths ``width_per_group`` x (1, 4, 8, 16, 32) = 32, 128, 256, 512, 1024;
* temporal kernel sizes per stage (stem, s2, ..., s5) from a string: ``'33333'`` = 3D ResNet (f),
  ``'11111'`` = frame-wise 2D ResNet (g), which only mixes frames in the final average pooling;
* head: average pooling -> dropout -> Linear; ``forward`` returns ``(logits, features)``, features = the pooled
  vector (``feature_pos='post'``) or the logits (``'logits'``).

The head pools over ``pool_size`` windows (the training clip's final feature map, e.g. [8, 7, 7] at 224 px) with
stride 1, or globally when ``pool_size`` is None. A larger evaluation input (the 256 px test crop) gives several
windows; as in the original, eval mode then averages the windows' softmax probabilities (the returned "logits" are
their log, so argmax and softmax are those of the averaged probabilities).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

STAGE_BLOCKS = {18: (2, 2, 2, 2)}
WIDTH_MULTIPLIERS = (1, 4, 8, 16, 32)


def feature_map_size(num_frames: int, crop_size: int) -> tuple[int, int, int]:
    """(T, H, W) of the last stage's map for a clip of ``num_frames`` frames of ``crop_size`` px."""
    spatial = crop_size
    for _ in range(5):
        spatial = math.ceil(spatial / 2)
    return num_frames, spatial, spatial


def _conv(dim_in: int, dim_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> nn.Conv3d:
    return nn.Conv3d(dim_in, dim_out, kernel, stride=stride, padding=tuple(k // 2 for k in kernel), bias=False)


class BasicBlock3D(nn.Module):
    """[t, 3, 3] conv (spatial stride s) -> BN -> ReLU -> [1, 3, 3] conv -> BN, added to the input (through a
    1x1x1 projection + BN when the width or the resolution changes), then ReLU."""

    def __init__(self, dim_in: int, dim_out: int, temporal_kernel: int, spatial_stride: int):
        super().__init__()
        stride = (1, spatial_stride, spatial_stride)
        self.conv_a = _conv(dim_in, dim_out, (temporal_kernel, 3, 3), stride)
        self.bn_a = nn.BatchNorm3d(dim_out)
        self.conv_b = _conv(dim_out, dim_out, (1, 3, 3), (1, 1, 1))
        self.bn_b = nn.BatchNorm3d(dim_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if dim_in != dim_out or spatial_stride != 1:
            self.shortcut = nn.Sequential(nn.Conv3d(dim_in, dim_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm3d(dim_out))

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn_a(self.conv_a(x)))
        out = self.bn_b(self.conv_b(out))
        return self.relu(out + residual)


class ResNet3D(nn.Module):
    """Single-pathway ResNet over clips ``(N, 3, T, H, W)``; see the module docstring."""

    def __init__(self, num_classes: int, temporal_kernel_sizes: str = "33333", depth: int = 18,
                 width_per_group: int = 32, feature_pos: str = "post", dropout_rate: float = 0.0,
                 pool_size: tuple[int, int, int] | None = None):
        super().__init__()
        kernels = [int(k) for k in str(temporal_kernel_sizes)]
        if len(kernels) != 5 or any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"temporal_kernel_sizes must be 5 odd digits (stem, s2..s5), got "
                             f"{temporal_kernel_sizes!r}")
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
        if feature_pos not in ("post", "logits"):
            raise ValueError(f"feature_pos must be 'post' or 'logits', got {feature_pos!r}")
        widths = [width_per_group * multiplier for multiplier in WIDTH_MULTIPLIERS]
        self.feature_pos = feature_pos
        self.pool_size = pool_size
        self.stem = nn.Sequential(_conv(3, widths[0], (kernels[0], 7, 7), (1, 2, 2)), nn.BatchNorm3d(widths[0]),
                                  nn.ReLU(inplace=True),
                                  nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        stages = []
        for stage, blocks in enumerate(STAGE_BLOCKS[depth], start=1):
            stride = 1 if stage == 1 else 2
            stages.append(nn.Sequential(*(
                BasicBlock3D(widths[stage - 1] if block == 0 else widths[stage], widths[stage], kernels[stage],
                             stride if block == 0 else 1)
                for block in range(blocks))))
        self.stages = nn.Sequential(*stages)
        self.feature_dim = widths[-1]
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.fc = nn.Linear(self.feature_dim, num_classes)
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def feature_map(self, x: Tensor) -> Tensor:
        """The last stage's activations ``(N, C, T, H', W')``."""
        return self.stages(self.stem(x))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.feature_map(x)
        windows_shape = features.shape[2:]
        if self.pool_size is None or all(size <= pool for size, pool in zip(windows_shape, self.pool_size)):
            pooled = features.mean(dim=(2, 3, 4))
            logits = self.fc(self.dropout(pooled))
        else:
            kernel = tuple(min(size, pool) for size, pool in zip(windows_shape, self.pool_size))
            windows = nn.functional.avg_pool3d(features, kernel, stride=1)
            pooled = windows.mean(dim=(2, 3, 4))
            window_logits = self.fc(self.dropout(windows.flatten(2).transpose(1, 2)))
            if self.training:
                logits = window_logits.mean(dim=1)
            else:
                logits = window_logits.float().softmax(dim=2).mean(dim=1).log()
        return logits, (pooled if self.feature_pos == "post" else logits)
