"""What every image classifier shares: its input contract and ``example_inputs``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from archzoo.errors import UserError

BATCH = ("batch", 1, 1 << 16)  # a dynamic dimension of an exported graph: (name, min, max)
TIME = ("time", 1, 1 << 16)


@dataclass
class ExportGraph:
    """One computation of a model as a standalone graph (``archzoo export``; deploy/export.py): a module
    whose ``forward(*inputs)`` returns a tensor or a tuple of tensors, example inputs, their names,
    and for each input the dimensions that stay dynamic, ``{axis: (name, min, max)}``; a name shared
    by several inputs is one dimension. ``name`` suffixes the file of a model with several graphs."""

    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic: dict[str, dict[int, tuple[str, int, int]]] = field(default_factory=dict)
    name: str = ""


def ids_to_logits_graphs(model: nn.Module, max_len: int = TIME[2]) -> list[ExportGraph]:
    """The graph of a sentence classifier: padded word ids (B, T), T <= ``max_len`` -> logits (B, num_classes)."""
    return [ExportGraph(model, model.example_inputs(2), ["ids"], ["logits"],
                        {"ids": {0: BATCH, 1: ("time", 1, max_len)}})]


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

    def export_graphs(self) -> list[ExportGraph]:
        """images (B, C, H, W), normalised like the dataset's -> logits (B, num_classes)."""
        return [ExportGraph(self, self.example_inputs(2), ["images"], ["logits"], {"images": {0: BATCH}})]

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
