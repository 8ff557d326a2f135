"""What every image classifier shares: its input contract and ``example_inputs``."""

from __future__ import annotations

import torch
from torch import nn

from archzoo.errors import UserError


class ImageClassifier(nn.Module):
    """Base for models mapping images (B, C, H, W) to class logits (B, num_classes)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int):
        super().__init__()
        if in_channels < 1 or image_size < 1 or num_classes < 2:
            raise UserError(
                f"invalid image classifier shape: in_channels={in_channels}, image_size={image_size}, "
                f"num_classes={num_classes} (need channels >= 1, size >= 1, classes >= 2)"
            )
        self.input_shape = (in_channels, image_size, image_size)
        self.num_classes = num_classes

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor]:
        """A random batch of valid inputs, so generic tests and ``archzoo info`` cover every model."""
        return (torch.rand(batch_size, *self.input_shape),)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line error naming the expected shape (instead of a matmul size mismatch deep inside)."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            c, h, w = self.input_shape
            raise UserError(f"{type(self).__name__} expects images of shape (B, {c}, {h}, {w}), got {tuple(x.shape)}")


def check_dropout(name: str, dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"{name}: dropout must be in [0, 1), got {dropout}")


def check_widths(name: str, key: str, widths: tuple[int, ...]) -> None:
    if any(w < 1 for w in widths):
        raise UserError(f"{name}: every entry of {key} must be >= 1, got {list(widths)}")
