"""Multilayer perceptron baseline for image classification."""

from __future__ import annotations

import torch
from torch import nn

from archzoo.layers import Dropout, Linear
from archzoo.models.base import ImageClassifier, check_dropout, check_widths
from archzoo.models.cnn import activation_layer
from archzoo.models.registry import register_model


class MLP(ImageClassifier):
    """Fully connected classifier on flattened pixels.

    Math: h_0 = vec(x); h_l = dropout(ReLU(W_l h_{l-1} + b_l)); logits = W_out h_L + b_out.
    Reference: Simard, Steinkraus & Platt 2003 (one hidden layer of 800 units: 1.6% MNIST error
        without distortions).
    Shapes: x (B, C, H, W) -> logits (B, num_classes).
    ``activation`` (relu, tanh, sigmoid) replaces ReLU everywhere (the claims lab's activations experiment).
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int,
                 hidden_sizes: tuple[int, ...], dropout: float, activation: str = "relu"):
        super().__init__(in_channels, image_size, num_classes)
        check_widths("mlp", "hidden_sizes", hidden_sizes)
        check_dropout("mlp", dropout)
        widths = [in_channels * image_size * image_size, *hidden_sizes]
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [Linear(fan_in, fan_out), activation_layer("mlp", activation), Dropout(dropout)]
        layers.append(Linear(widths[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.net(x)


@register_model("mlp")
def mlp(in_channels: int = 1, image_size: int = 28, num_classes: int = 10,
        hidden_sizes: tuple[int, ...] = (800, 800), dropout: float = 0.2, activation: str = "relu") -> MLP:
    return MLP(in_channels, image_size, num_classes, hidden_sizes, dropout, activation)
