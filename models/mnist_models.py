"""SimpleConvNet of ReBias' Biased MNIST experiments (f: 7x7 kernels; g: 1x1 kernels, it sees pixel colour only),
and its seed-stacked form for training several seeds at once."""
from __future__ import annotations

import torch
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
        pooled = feature_map.mean(dim=(2, 3))  # AdaptiveAvgPool2d's CUDA backward is not deterministic
        logits = self.fc(pooled)
        if logits_only:
            return logits
        features = {"pre": feature_map, "post": pooled, "logits": logits}[self.feature_pos]
        return logits, features


class SeedStackedConvNet(nn.Module):
    """K SimpleConvNets (one per seed) run as one network, to train several seeds in one process.

    The input holds the K seeds' batches side by side on the channel axis, ``(B, 3K, H, W)``. Every convolution is
    grouped (``groups=K``: group k sees only seed k's channels), BatchNorm normalises each of the K x C channels
    with its own statistics and the K classifiers are one batched matrix product, so seed k's outputs depend only
    on seed k's parameters and inputs: the sum of the K seeds' losses gives each seed the gradient of its own loss.

    ``forward`` returns ``(logits, features)`` with a leading seed axis: ``(K, B, classes)`` and ``(K, B, ...)``.
    """

    def __init__(self, nets: list[SimpleConvNet]):
        super().__init__()
        if not nets:
            raise ValueError("SeedStackedConvNet needs at least one SimpleConvNet")
        template = nets[0]
        self.num_seeds = len(nets)
        self.feature_pos = template.feature_pos
        self.kernel_size = template.kernel_size
        self.num_classes = template.fc.out_features
        self.feature_channels = template.fc.in_features
        layers: list[nn.Module] = []
        for position, module in enumerate(template.extractor):
            parts = [net.extractor[position] for net in nets]
            if isinstance(module, nn.Conv2d):
                layers.append(_stack_convs(parts, self.num_seeds))
            elif isinstance(module, nn.BatchNorm2d):
                layers.append(_stack_batch_norms(parts))
            else:
                layers.append(nn.ReLU(inplace=True))
        self.extractor = nn.Sequential(*layers)
        self.fc_weight = nn.Parameter(torch.stack([net.fc.weight.detach() for net in nets]).clone())
        self.fc_bias = nn.Parameter(torch.stack([net.fc.bias.detach() for net in nets]).clone())

    @property
    def feature_dim(self) -> int:
        return self.num_classes if self.feature_pos == "logits" else self.feature_channels

    def forward(self, x: Tensor, logits_only: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        feature_map = self.extractor(x)
        batch, _, height, width = feature_map.shape
        per_seed_map = feature_map.view(batch, self.num_seeds, self.feature_channels, height, width).transpose(0, 1)
        pooled = per_seed_map.mean(dim=(3, 4))
        logits = torch.baddbmm(self.fc_bias.unsqueeze(1), pooled, self.fc_weight.transpose(1, 2))
        if logits_only:
            return logits
        features = {"pre": per_seed_map, "post": pooled, "logits": logits}[self.feature_pos]
        return logits, features

    def seed_state_dict(self, seed_index: int) -> dict[str, Tensor]:
        """Seed ``seed_index``'s parameters and BatchNorm statistics as a SimpleConvNet state dict."""
        state = {f"extractor.{key}": tensor if tensor.dim() == 0 else tensor.chunk(self.num_seeds)[seed_index]
                 for key, tensor in self.extractor.state_dict().items()}
        state.update({"fc.weight": self.fc_weight[seed_index], "fc.bias": self.fc_bias[seed_index]})
        return {key: tensor.detach().clone() for key, tensor in state.items()}

    def unstack(self, seed_index: int) -> SimpleConvNet:
        """A SimpleConvNet holding an exact copy of seed ``seed_index``'s network (same device, dtype and train/eval
        mode)."""
        net = SimpleConvNet(self.num_classes, kernel_size=self.kernel_size, feature_pos=self.feature_pos)
        net.to(self.fc_weight.device, self.fc_weight.dtype).load_state_dict(self.seed_state_dict(seed_index))
        return net.train(self.training)


def _stack_convs(convs: list[nn.Conv2d], groups: int) -> nn.Conv2d:
    first = convs[0]
    stacked = nn.Conv2d(first.in_channels * groups, first.out_channels * groups, first.kernel_size,
                        padding=first.padding, groups=groups, device=first.weight.device)
    with torch.no_grad():
        stacked.weight.copy_(torch.cat([conv.weight for conv in convs]))
        stacked.bias.copy_(torch.cat([conv.bias for conv in convs]))
    return stacked


def _stack_batch_norms(norms: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    first = norms[0]
    stacked = nn.BatchNorm2d(first.num_features * len(norms), eps=first.eps, momentum=first.momentum,
                             device=first.weight.device)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(stacked, name).copy_(torch.cat([getattr(norm, name) for norm in norms]))
        stacked.num_batches_tracked.copy_(first.num_batches_tracked)
    return stacked
