"""AlexNet: five convolutions and three fully connected layers with ReLU, overlapping max pooling and dropout."""

from __future__ import annotations

import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import Conv2d, Dropout, Linear, MaxPool2d
from archzoo.models.base import ImageClassifier, check_dropout, check_widths
from archzoo.models.blocks import IMAGENET_STEM_MIN_SIZE, check_min_size, pooled
from archzoo.models.registry import register_model


class AlexNet(ImageClassifier):
    """conv1 -> pool -> conv2 -> pool -> conv3 -> conv4 -> conv5 -> pool -> FC -> FC -> FC, ReLU after each
    hidden layer, dropout before the first two FC layers, 3x3 stride-2 (overlapping) max pooling.

    Math: ImageNet stem (images >= 64x64): conv1 11x11 stride 4 padding 2, conv2 5x5 padding 2; conv3-5 3x3
        padding 1; at 224x224 the maps are 55 -> 27 -> 27 -> 13 -> 13 -> 6 and FC6 sees 256*6*6 = 9216.
        Small images: conv1 5x5 stride 1 padding 2, the rest unchanged (28 -> 13 -> 6 -> 2; 32 -> 15 -> 7 -> 3).
    Reference: Krizhevsky, Sutskever & Hinton 2012, "ImageNet Classification with Deep Convolutional Neural
        Networks", NeurIPS (no arXiv), Sec. 3 and Fig. 2: widths 96-256-384-384-256, FC 4096-4096-1000,
        conv2/4/5 connected only within each GPU's half (groups=2), about 60M parameters.
    Shapes: x (B, C, H, W) -> logits (B, num_classes).
    Differs from paper: no local response normalisation (later work found it does not help); one tower by
        default (``groups=2`` restores the two-GPU connectivity of conv2, conv4 and conv5); small images get
        the 5x5 stride-1 first layer above and FC layers of ``hidden`` = 1024 units (4096 in the paper);
        weights use torch.nn's default initialisation, not N(0, 0.01) with biases of 1.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, widths: tuple[int, ...], hidden: int,
                 groups: int, dropout: float):
        super().__init__(in_channels, image_size, num_classes)
        if len(widths) != 5:
            raise UserError(f"alexnet: widths must list 5 conv widths, got {list(widths)}")
        check_widths("alexnet", "widths and hidden", (*widths, hidden))
        check_dropout("alexnet", dropout)
        if any(w % groups for w in widths[:4]) or widths[4] % groups:
            raise UserError(f"alexnet: groups={groups} must divide every width, got {list(widths)}")
        c1, c2, c3, c4, c5 = widths
        if image_size >= IMAGENET_STEM_MIN_SIZE:
            first, side = Conv2d(in_channels, c1, 11, 4, 2), (image_size + 4 - 11) // 4 + 1
        else:
            check_min_size("alexnet", image_size, 15)
            first, side = Conv2d(in_channels, c1, 5, 1, 2), image_size
        for _ in range(3):
            side = pooled(side, 3, 2)
        self.features = nn.Sequential(
            first, nn.ReLU(inplace=True), MaxPool2d(3, 2),
            Conv2d(c1, c2, 5, padding=2, groups=groups), nn.ReLU(inplace=True), MaxPool2d(3, 2),
            Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            Conv2d(c3, c4, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
            Conv2d(c4, c5, 3, padding=1, groups=groups), nn.ReLU(inplace=True), MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            Dropout(dropout), Linear(c5 * side * side, hidden), nn.ReLU(inplace=True),
            Dropout(dropout), Linear(hidden, hidden), nn.ReLU(inplace=True),
            Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


@register_model("alexnet")
def alexnet(in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
            widths: tuple[int, ...] = (96, 256, 384, 384, 256), hidden: int = 1024, groups: int = 1,
            dropout: float = 0.5) -> AlexNet:
    return AlexNet(in_channels, image_size, num_classes, widths, hidden, groups, dropout)
