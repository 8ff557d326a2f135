"""GoogLeNet: Inception v1 modules (parallel 1x1, 3x3, 5x5 and pooled branches, concatenated)."""

from __future__ import annotations

import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import AdaptiveAvgPool2d, Dropout, Linear, MaxPool2d
from archzoo.models.base import ImageClassifier, check_dropout
from archzoo.models.blocks import IMAGENET_STEM_MIN_SIZE, check_min_size, conv_bn_relu, he_init
from archzoo.models.registry import register_model

# Szegedy et al. 2015, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; "M" = 3x3/2 max pool
INCEPTIONS = (
    ("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), "M",
    ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)), ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)), ("4e", (256, 160, 320, 32, 128, 128)), "M",
    ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128)),
)


class Inception(nn.Module):
    """Four parallel branches concatenated along channels.

    Math: y = [ conv1x1(x) ; conv3x3(conv1x1(x)) ; conv5x5(conv1x1(x)) ; conv1x1(maxpool3x3/1(x)) ],
        every conv followed by (batch norm and) ReLU; the 1x1 "reduce" convs cut the channels first.
    Reference: Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke & Rabinovich 2015, "Going
        Deeper with Convolutions", arXiv:1409.4842, Fig. 2(b) and Table 1.
    Shapes: (B, C_in, H, W) -> (B, c1 + c3 + c5 + pool_proj, H, W).
    """

    def __init__(self, in_channels: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int,
                 batch_norm: bool):
        super().__init__()
        self.branch1 = conv_bn_relu(in_channels, c1, 1, batch_norm=batch_norm)
        self.branch3 = nn.Sequential(conv_bn_relu(in_channels, c3r, 1, batch_norm=batch_norm),
                                     conv_bn_relu(c3r, c3, 3, padding=1, batch_norm=batch_norm))
        self.branch5 = nn.Sequential(conv_bn_relu(in_channels, c5r, 1, batch_norm=batch_norm),
                                     conv_bn_relu(c5r, c5, 5, padding=2, batch_norm=batch_norm))
        self.branch_pool = nn.Sequential(MaxPool2d(3, 1, 1),
                                         conv_bn_relu(in_channels, pool_proj, 1, batch_norm=batch_norm))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class GoogLeNet(ImageClassifier):
    """Stem, Inception 3a-3b, max pool, 4a-4e, max pool, 5a-5b, global average pool, dropout 0.4, FC.

    Math: ImageNet stem (images >= 64x64): conv 7x7/2 (64) -> max pool 3x3/2 -> conv 1x1 (64) -> conv 3x3
        (192) -> max pool 3x3/2, so 224 -> 56 -> 28 at 3a; small images: one conv 3x3 (192), so 28x28
        inputs reach the Inception stages at 28, 14 and 7. Every channel count is multiplied by ``width``.
    Reference: Szegedy et al. 2015, "Going Deeper with Convolutions", arXiv:1409.4842, Table 1 (about 6.8M
        parameters at 224x224 with 1000 classes, auxiliary classifiers excluded).
    Shapes: x (B, C, H, W) -> logits (B, num_classes).
    Differs from paper: small by default (``width`` = 0.5 halves every width; 1.0 is the paper's); batch
        norm after every conv (Inception v2's addition; ``batch_norm=False`` is the original); no local
        response normalisation and no auxiliary classifiers; pools use ceil mode as Caffe did;
        He initialisation.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, width: float, batch_norm: bool,
                 dropout: float):
        super().__init__(in_channels, image_size, num_classes)
        if not 0 < width <= 4:
            raise UserError(f"googlenet: width must be in (0, 4], got {width}")
        check_dropout("googlenet", dropout)

        def w(c: int) -> int:
            return max(1, round(c * width))

        if image_size >= IMAGENET_STEM_MIN_SIZE:
            self.stem = nn.Sequential(
                conv_bn_relu(in_channels, w(64), 7, 2, 3, batch_norm), MaxPool2d(3, 2, ceil_mode=True),
                conv_bn_relu(w(64), w(64), 1, batch_norm=batch_norm),
                conv_bn_relu(w(64), w(192), 3, padding=1, batch_norm=batch_norm), MaxPool2d(3, 2, ceil_mode=True))
        else:
            check_min_size("googlenet", image_size, 4)
            self.stem = conv_bn_relu(in_channels, w(192), 3, padding=1, batch_norm=batch_norm)
        blocks: list[nn.Module] = []
        channels = w(192)
        for item in INCEPTIONS:
            if item == "M":
                blocks.append(MaxPool2d(3, 2, ceil_mode=True))
            else:
                block = Inception(channels, *(w(c) for c in item[1]), batch_norm=batch_norm)
                blocks.append(block)
                channels = block.out_channels
        self.inceptions = nn.Sequential(*blocks)
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = Dropout(dropout)
        self.fc = Linear(channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.dropout(self.flatten(self.pool(self.inceptions(self.stem(x))))))


@register_model("googlenet")
def googlenet(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, width: float = 0.5,
              batch_norm: bool = True, dropout: float = 0.4) -> GoogLeNet:
    return GoogLeNet(in_channels, image_size, num_classes, width, batch_norm, dropout)
