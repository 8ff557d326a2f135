"""A torch.nn twin of any model built from archzoo's conv-family layers, for parity tests and speed baselines.

The layers in conv.py, pooling.py, norm.py, linear.py and dropout.py subclass their torch.nn counterparts and
add only the impl switch and a forward that dispatches on it. Retyping a deep copy of each such layer to
its torch.nn base class therefore gives exactly the torch.nn module, with the same parameters, buffers and
configuration; everything else in the model (blocks, shortcuts, concatenations) stays as written.
"""

from __future__ import annotations

import copy

from torch import nn

from archzoo.layers.conv import Conv2d
from archzoo.layers.dropout import Dropout
from archzoo.layers.linear import Linear
from archzoo.layers.norm import BatchNorm1d, BatchNorm2d
from archzoo.layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

TORCH_COUNTERPARTS: dict[type, type[nn.Module]] = {
    Conv2d: nn.Conv2d, Linear: nn.Linear, Dropout: nn.Dropout, BatchNorm1d: nn.BatchNorm1d,
    BatchNorm2d: nn.BatchNorm2d, MaxPool2d: nn.MaxPool2d, AvgPool2d: nn.AvgPool2d,
    AdaptiveAvgPool2d: nn.AdaptiveAvgPool2d,
}


def torch_nn_twin(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose archzoo layers are plain torch.nn layers (same state, same config)."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        base = TORCH_COUNTERPARTS.get(type(module))
        if base is not None:
            module.__dict__.pop("_impl", None)
            module.__class__ = base
    return twin
