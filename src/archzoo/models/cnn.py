"""Convolutional image classifiers: the classic small CNN and LeNet-5.

Built from archzoo's layers (torch.nn's parameter names and initialisation), so ``use_impl("reference")``
runs them through the reference convolutions and pooling; the other CNNs live in alexnet.py, vgg.py,
googlenet.py, resnet.py and densenet.py."""

from __future__ import annotations

import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import AvgPool2d, Conv2d, Dropout, Linear, MaxPool2d
from archzoo.models.base import ImageClassifier, check_dropout, check_widths
from archzoo.models.registry import register_model

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
HEADS = ("flatten", "global_avg")


def activation_layer(model: str, name: str) -> nn.Module:
    """A fresh activation module by name (relu, tanh, sigmoid); an unknown name is one line."""
    if name not in ACTIVATIONS:
        raise UserError(f"{model} takes activation in {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class SimpleCNN(ImageClassifier):
    """Two conv blocks and two fully connected layers: the classic "simple CNN on MNIST".

    Math: conv3x3(32) -> ReLU -> maxpool2 -> conv3x3(64) -> ReLU -> maxpool2 -> FC(128) -> ReLU
        -> dropout -> FC(num_classes); convolutions use padding 1 so each pool halves H and W. The
        module pools before the activation: maxpool(act(x)) = act(maxpool(x)) for a non-decreasing act.
    Reference: the Keras / pytorch-examples MNIST CNN family (2 conv layers, 99.2-99.4% on MNIST).
    Shapes: x (B, C, H, W) with H, W divisible by 4 -> logits (B, num_classes).
    Variants (the claims lab's ablations; the defaults are the model above): ``activation`` (relu, tanh,
        sigmoid) everywhere; ``batch_norm`` after each convolution (Ioffe & Szegedy 2015); ``head``
        "global_avg" averages the last feature maps over space before FC(hidden) instead of flattening
        them (Lin et al. 2014, "Network in Network", global average pooling), so the head sees no position.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int,
                 channels: tuple[int, int], hidden: int, dropout: float, activation: str = "relu",
                 batch_norm: bool = False, head: str = "flatten"):
        super().__init__(in_channels, image_size, num_classes)
        if image_size % 4:
            raise UserError(f"simple_cnn needs an image size divisible by 4, got {image_size}")
        check_widths("simple_cnn", "channels and hidden", (*channels, hidden))
        check_dropout("simple_cnn", dropout)
        if head not in HEADS:
            raise UserError(f"simple_cnn takes head in {list(HEADS)}, got {head!r}")
        c1, c2 = channels
        layers: list[nn.Module] = []
        for fan_in, fan_out in ((in_channels, c1), (c1, c2)):
            layers.append(Conv2d(fan_in, fan_out, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(fan_out))
            # pooling first: max commutes with a non-decreasing activation (ReLU, tanh, sigmoid), so this is
            # the same function with the activation on a quarter of the elements
            layers += [MaxPool2d(2), activation_layer("simple_cnn", activation)]
        self.features = nn.Sequential(*layers)
        pooled = [nn.AdaptiveAvgPool2d(1)] if head == "global_avg" else []
        flat = c2 if head == "global_avg" else c2 * (image_size // 4) ** 2
        self.classifier = nn.Sequential(
            *pooled, nn.Flatten(),
            Linear(flat, hidden), activation_layer("simple_cnn", activation), Dropout(dropout),
            Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


class LeNet5(ImageClassifier):
    """LeNet-5: C1 conv 6@5x5, S2 subsampling, C3 conv 16@5x5, S4 subsampling, C5/F6/output 120-84-10.

    Math: on a 32x32 input, C1 -> 6@28x28, S2 -> 6@14x14, C3 -> 16@10x10, S4 -> 16@5x5,
        then FC 400 -> 120 -> 84 -> num_classes with activation ``act`` between layers.
    Reference: LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
        recognition", Proc. IEEE 86(11), Fig. 2 (0.95% MNIST test error).
    Shapes: x (B, C, 28, 28) is zero-padded by 2 to 32x32 as in the paper; logits (B, num_classes).
    Differs from paper: C3 connects every S2 map (the paper uses a sparse connection table);
        subsampling is plain average (``pool='avg'``) or max pooling, not a trainable scaled
        average; activation is tanh or ReLU, not the scaled 1.7159 tanh(2/3 x); the output is a
        linear layer trained with cross-entropy instead of Euclidean RBF units.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, activation: str, pool: str):
        super().__init__(in_channels, image_size, num_classes)
        acts = {"tanh": nn.Tanh, "relu": nn.ReLU}
        pools = {"avg": AvgPool2d, "max": MaxPool2d}
        if activation not in acts or pool not in pools:
            raise UserError(f"lenet5 takes activation in {sorted(acts)} and pool in {sorted(pools)}, "
                            f"got {activation!r}, {pool!r}")
        pad = max(0, (32 - image_size) // 2)
        side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if side < 1:
            raise UserError(f"lenet5 needs images of at least 12x12, got {image_size}")
        act, subsample = acts[activation], pools[pool]
        self.features = nn.Sequential(
            Conv2d(in_channels, 6, 5, padding=pad), act(), subsample(2),
            Conv2d(6, 16, 5), act(), subsample(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            Linear(16 * side * side, 120), act(),
            Linear(120, 84), act(),
            Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))


@register_model("simple_cnn")
def simple_cnn(in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
               channels: tuple[int, int] = (32, 64), hidden: int = 128, dropout: float = 0.0,
               activation: str = "relu", batch_norm: bool = False, head: str = "flatten") -> SimpleCNN:
    return SimpleCNN(in_channels, image_size, num_classes, channels, hidden, dropout, activation, batch_norm, head)


@register_model("lenet5")
def lenet5(in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
           activation: str = "tanh", pool: str = "avg") -> LeNet5:
    return LeNet5(in_channels, image_size, num_classes, activation, pool)
