"""DenseNet-BC: dense blocks of bottleneck layers, each seeing every earlier feature map, with compressing transitions."""

from __future__ import annotations

import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dropout, Linear
from archzoo.models.base import ImageClassifier, check_dropout
from archzoo.models.blocks import check_min_size, he_init
from archzoo.models.registry import register_model


class Bottleneck(nn.Module):
    """One dense layer: BN-ReLU-conv1x1 (4k) - BN-ReLU-conv3x3 (k), its output appended to its input.

    Math: x_l = H_l([x_0, x_1, ..., x_{l-1}]), H_l = conv3x3(ReLU(BN(conv1x1(ReLU(BN(·)))))); returns
        [x_0, ..., x_{l-1}, x_l].
    Reference: Huang, Liu, van der Maaten & Weinberger 2017, "Densely Connected Convolutional Networks",
        arXiv:1608.06993, eq. (2) and Sec. 3 "Bottleneck layers".
    Shapes: (B, C, H, W) -> (B, C + k, H, W).
    """

    def __init__(self, in_channels: int, growth_rate: int, dropout: float):
        super().__init__()
        inner = 4 * growth_rate
        self.bn1, self.relu1 = BatchNorm2d(in_channels), nn.ReLU(inplace=True)
        self.conv1 = Conv2d(in_channels, inner, 1, bias=False)
        self.bn2, self.relu2 = BatchNorm2d(inner), nn.ReLU(inplace=True)
        self.conv2 = Conv2d(inner, growth_rate, 3, padding=1, bias=False)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv2(self.relu2(self.bn2(self.conv1(self.relu1(self.bn1(x))))))
        return torch.cat([x, self.dropout(new)], dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 to floor(θ·C) channels, then 2x2 average pooling (Huang et al. 2017, Sec. 3)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(BatchNorm2d(in_channels), nn.ReLU(inplace=True), Conv2d(in_channels, out_channels, 1, bias=False),
                         AvgPool2d(2))


class DenseNet(ImageClassifier):
    """DenseNet-BC for small images: conv3x3 (2k) stem, three dense blocks with two transitions, BN-ReLU,
    global average pooling and a linear classifier.

    Math: depth L = 6n + 4 gives n bottleneck layers per block (each two convs) plus the stem, the two
        transitions and the classifier; block b ends with C_b = C_{b-1}' + n k channels and each
        transition keeps floor(θ C_b) (compression θ).
    Reference: Huang, Liu, van der Maaten & Weinberger 2017, "Densely Connected Convolutional Networks",
        arXiv:1608.06993, Sec. 3-4 (DenseNet-BC, L = 100, k = 12: 0.8M parameters, 4.51% error on C10+).
    Shapes: x (B, C, H, W) -> logits (B, num_classes); H, W halve at each transition (28 -> 14 -> 7).
    Differs from paper: none in the architecture; the paper uses dropout 0.2 only without augmentation.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, depth: int, growth_rate: int,
                 compression: float, dropout: float):
        super().__init__(in_channels, image_size, num_classes)
        if depth < 10 or (depth - 4) % 6:
            raise UserError(f"densenet_bc: depth must be 6n + 4 with n >= 1 (e.g. 40, 100, 250), got {depth}")
        if growth_rate < 1 or not 0 < compression <= 1:
            raise UserError(f"densenet_bc: growth_rate must be >= 1 and compression in (0, 1], "
                            f"got {growth_rate}, {compression}")
        check_dropout("densenet_bc", dropout)
        check_min_size("densenet_bc", image_size, 4)
        n = (depth - 4) // 6
        channels = 2 * growth_rate
        layers: list[nn.Module] = [Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(n):
                layers.append(Bottleneck(channels, growth_rate, dropout))
                channels += growth_rate
            if block < 2:
                out = int(compression * channels)
                layers.append(Transition(channels, out))
                channels = out
        layers += [BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = Linear(channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.flatten(self.pool(self.features(x))))


@register_model("densenet_bc")
def densenet_bc(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, depth: int = 100,
                growth_rate: int = 12, compression: float = 0.5, dropout: float = 0.0) -> DenseNet:
    return DenseNet(in_channels, image_size, num_classes, depth, growth_rate, compression, dropout)
