"""SimpleConvNet of ReBias' Biased MNIST experiments: f uses 7x7 kernels, g uses 1x1 kernels (sees pixel colour only)."""
from __future__ import annotations

from torch import Tensor, nn

FEATURE_POSITIONS = ("pre", "post", "logits")


class SimpleConvNet(nn.Module):
    """Four ``Conv(k x k) -> BN -> ReLU`` layers (3->16->32->64->128 channels, stride 1, no pooling), global average
    pooling to a 128-d feature and a linear classifier.

    ``forward`` returns ``(logits, features)`` where the features are chosen by ``feature_pos``: ``'pre'`` the
    128x28x28 map before pooling, ``'post'`` the pooled 128-d vector (the paper's setting) or ``'logits'``.
    """

    def __init__(self, num_classes: int = 10, kernel_size: int = 7, feature_pos: str = "post"):
        super().__init__()
        if feature_pos not in FEATURE_POSITIONS:
            raise ValueError(f"feature_pos must be one of {FEATURE_POSITIONS}, got '{feature_pos}'")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        layers: list[nn.Module] = []
        channels = (3, 16, 32, 64, 128)
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        self.extractor = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[-1], num_classes)
        self.feature_pos = feature_pos
        self.kernel_size = kernel_size
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def feature_dim(self) -> int:
        return self.fc.out_features if self.feature_pos == "logits" else self.fc.in_features

    def forward(self, x: Tensor, logits_only: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        feature_map = self.extractor(x)
        pooled = self.pool(feature_map).flatten(1)
        logits = self.fc(pooled)
        if logits_only:
            return logits
        features = {"pre": feature_map, "post": pooled, "logits": logits}[self.feature_pos]
        return logits, features
