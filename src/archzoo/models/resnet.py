"""Residual networks with basic blocks (ResNet-18; CIFAR ResNet-20/56) and their plain twins without shortcuts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d
from archzoo.models.base import ImageClassifier
from archzoo.models.blocks import IMAGENET_STEM_MIN_SIZE, check_min_size, conv_bn_relu, he_init
from archzoo.models.registry import register_model

SHORTCUTS = ("A", "B", "none")


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers and a shortcut: y = ReLU(F(x) + shortcut(x)).

    Math: F(x) = BN(W_2 * ReLU(BN(W_1 * x))) with W_1 of stride s;
          shortcut "A": x subsampled with stride s and zero-padded with extra channels (no parameters);
          shortcut "B": BN(W_s * x), a strided 1x1 projection, where the shape changes (identity elsewhere);
          "none": the plain block y = ReLU(F(x)).
    Reference: He, Zhang, Ren & Sun 2015, "Deep Residual Learning for Image Recognition", arXiv:1512.03385,
        eq. (1)-(2) and Sec. 3.3 (options A and B); Fig. 2 (the building block).
    Shapes: (B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.shortcut_kind = shortcut
        self.stride, self.extra_channels = stride, out_channels - in_channels
        self.projection: nn.Module | None = None
        if shortcut == "B" and (stride != 1 or in_channels != out_channels):
            self.projection = nn.Sequential(Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            BatchNorm2d(out_channels))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(x)
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            lo = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, lo, self.extra_channels - lo))  # zero channels before and after
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        if self.shortcut_kind != "none":
            out = out + self.shortcut(x)
        return self.relu2(out)


class ResNet(ImageClassifier):
    """A stem, stages of basic blocks (the first block of each later stage halves H and W and widens),
    global average pooling and a linear classifier.

    Math: stem -> stage_1 ... stage_S (n_s blocks of width w_s) -> global average pool -> FC.
    Reference: He, Zhang, Ren & Sun 2015, "Deep Residual Learning for Image Recognition", arXiv:1512.03385:
        Table 1 (ResNet-18: 7x7/2 stem, 3x3/2 max pool, [2, 2, 2, 2] blocks of 64-128-256-512, option B),
        Sec. 4.2 (CIFAR-10: 3x3 stem of 16, 3 stages of n blocks of 16-32-64, depth 6n + 2, option A;
        ResNet-20 0.27M, ResNet-56 0.85M parameters); plain networks: the same without shortcuts (Fig. 6).
    Shapes: x (B, C, H, W) -> logits (B, num_classes).
    Differs from paper: for images smaller than 64x64 (MNIST, Fashion-MNIST) ResNet-18 uses a 3x3 stride-1
        stem without max pooling, the usual adaptation for 32x32 inputs; the CIFAR networks take 28x28
        inputs as they are (stages at 28, 14, 7). Greyscale inputs need only a 1-channel stem.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, blocks: tuple[int, ...],
                 widths: tuple[int, ...], stem: str, shortcut: str, name: str):
        super().__init__(in_channels, image_size, num_classes)
        if shortcut not in SHORTCUTS:
            raise UserError(f"{name}: shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
        if stem == "imagenet":
            check_min_size(name, image_size, 32)
            self.stem = nn.Sequential(conv_bn_relu(in_channels, widths[0], 7, 2, 3), MaxPool2d(3, 2, 1))
        else:
            check_min_size(name, image_size, 2 ** (len(blocks) - 1))
            self.stem = conv_bn_relu(in_channels, widths[0], 3, 1, 1)
        stages, channels = [], widths[0]
        for i, (n, width) in enumerate(zip(blocks, widths, strict=True)):
            stage = [BasicBlock(channels if j == 0 else width, width, 2 if i > 0 and j == 0 else 1, shortcut)
                     for j in range(n)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = Linear(channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))


def _cifar(depth: int, in_channels: int, image_size: int, num_classes: int, shortcut: str, name: str) -> ResNet:
    if (depth - 2) % 6:
        raise UserError(f"{name}: depth must be 6n + 2, got {depth}")
    n = (depth - 2) // 6
    return ResNet(in_channels, image_size, num_classes, (n, n, n), (16, 32, 64), "small", shortcut, name)


@register_model("resnet18")
def resnet18(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, shortcut: str = "B") -> ResNet:
    stem = "imagenet" if image_size >= IMAGENET_STEM_MIN_SIZE else "small"
    return ResNet(in_channels, image_size, num_classes, (2, 2, 2, 2), (64, 128, 256, 512), stem, shortcut,
                  "resnet18")


@register_model("resnet20")
def resnet20(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, shortcut: str = "A") -> ResNet:
    return _cifar(20, in_channels, image_size, num_classes, shortcut, "resnet20")


@register_model("resnet56")
def resnet56(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, shortcut: str = "A") -> ResNet:
    return _cifar(56, in_channels, image_size, num_classes, shortcut, "resnet56")


@register_model("plain20")
def plain20(in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> ResNet:
    return _cifar(20, in_channels, image_size, num_classes, "none", "plain20")


@register_model("plain56")
def plain56(in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> ResNet:
    return _cifar(56, in_channels, image_size, num_classes, "none", "plain56")
