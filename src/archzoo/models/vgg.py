"""VGG: stacks of 3x3 convolutions between 2x2 max pools, then three fully connected layers."""

from __future__ import annotations

import torch
from torch import nn

from archzoo.layers import Dropout, Linear, MaxPool2d
from archzoo.models.base import ImageClassifier, check_dropout, check_widths
from archzoo.models.blocks import conv_bn_relu, he_init, pooled
from archzoo.models.registry import register_model

# Simonyan & Zisserman 2015, Table 1: conv widths, "M" = 2x2 max pool with stride 2
CONFIGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),  # VGG-11
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),  # VGG-16
}


class VGG(ImageClassifier):
    """conv3x3 (+BN) + ReLU blocks and five 2x2 max pools, then FC-ReLU-dropout, FC-ReLU-dropout, FC.

    Math: every conv is 3x3, stride 1, padding 1 (H and W kept); each pool halves H and W (ceil mode, so
        28x28 inputs reach 1x1 after five pools: 28 -> 14 -> 7 -> 4 -> 2 -> 1); FC1 sees 512·s·s.
    Reference: Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
        Recognition", arXiv:1409.1556, Table 1 (configurations A = VGG-11 and D = VGG-16; 133M and 138M
        parameters with FC 4096-4096-1000 at 224x224); batch norm variant: Ioffe & Szegedy 2015,
        arXiv:1502.03167 (torchvision's ``vgg*_bn``).
    Shapes: x (B, C, H, W) -> logits (B, num_classes).
    Differs from paper: the hidden FC width is ``hidden`` (512 by default for small images, 4096 in the
        paper); pools use ceil mode (identical on even sizes, so at 224x224); He initialisation instead of
        N(0, 0.01) with the shallower net's weights copied in; optional batch norm after each conv.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, config: str, batch_norm: bool,
                 hidden: int, dropout: float):
        super().__init__(in_channels, image_size, num_classes)
        check_widths(f"vgg ({config})", "hidden", (hidden,))
        check_dropout("vgg", dropout)
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for item in CONFIGS[config]:
            if item == "M":
                layers.append(MaxPool2d(2, 2, ceil_mode=True))
                side = pooled(side, 2, 2, ceil_mode=True)
            else:
                layers.append(conv_bn_relu(channels, int(item), 3, 1, 1, batch_norm))
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            Linear(channels * side * side, hidden), nn.ReLU(inplace=True), Dropout(dropout),
            Linear(hidden, hidden), nn.ReLU(inplace=True), Dropout(dropout),
            Linear(hidden, num_classes),
        )
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


@register_model("vgg11")
def vgg11(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, hidden: int = 512,
          dropout: float = 0.5) -> VGG:
    return VGG(in_channels, image_size, num_classes, "A", False, hidden, dropout)


@register_model("vgg11_bn")
def vgg11_bn(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, hidden: int = 512,
             dropout: float = 0.5) -> VGG:
    return VGG(in_channels, image_size, num_classes, "A", True, hidden, dropout)


@register_model("vgg16")
def vgg16(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, hidden: int = 512,
          dropout: float = 0.5) -> VGG:
    return VGG(in_channels, image_size, num_classes, "D", False, hidden, dropout)


@register_model("vgg16_bn")
def vgg16_bn(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, hidden: int = 512,
             dropout: float = 0.5) -> VGG:
    return VGG(in_channels, image_size, num_classes, "D", True, hidden, dropout)
