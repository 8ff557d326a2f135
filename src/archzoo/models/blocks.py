"""Pieces the CNN family shares: conv (+ batch norm) + ReLU, He initialisation, the small-image rule."""

from __future__ import annotations

import math

from torch import nn

from archzoo.errors import UserError
from archzoo.layers import BatchNorm2d, Conv2d, Linear

# Inputs at least this large get a model's ImageNet stem (strided first layers); smaller ones (MNIST's 28x28,
# CIFAR's 32x32) get the usual small-image stem, which keeps the resolution for the later stages.
IMAGENET_STEM_MIN_SIZE = 64


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 batch_norm: bool = True, groups: int = 1) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU (conv without bias under batch norm, whose β replaces it), or Conv -> ReLU."""
    layers: list[nn.Module] = [Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                                      bias=not batch_norm)]
    if batch_norm:
        layers.append(BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def he_init(model: nn.Module) -> None:
    """He et al. 2015 (arXiv:1502.01852) normal initialisation of every conv, fan-out mode as in the ResNet code;
    batch norm γ = 1, β = 0; linear layers keep torch.nn's default with zero bias."""
    for m in model.modules():
        if isinstance(m, Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def check_min_size(name: str, image_size: int, minimum: int) -> None:
    if image_size < minimum:
        raise UserError(f"{name} needs images of at least {minimum}x{minimum}, got {image_size}x{image_size}")


def pooled(size: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Spatial size after a pooling (or conv) window, as PyTorch counts it."""
    span = size + 2 * padding - kernel
    n = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (n - 1) * stride >= size + padding:
        n -= 1
    return n
