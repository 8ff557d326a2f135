"""Fully connected layer: the affine map written out beside ``F.linear``, over torch.nn.Linear's parameters.

``Linear`` subclasses ``torch.nn.Linear`` and adds only the impl switch, so ``weight`` (out, in) and
``bias`` (out,), their initialisation and ``state_dict`` are torch.nn's by construction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch


def linear_reference(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """An affine map of the last dimension.

    Math: y = x Wᵀ + b,  i.e. y[..., o] = Σ_i x[..., i] W[o, i] + b[o]
    Reference: Rosenblatt 1958, "The perceptron: a probabilistic model for information storage and
        organization in the brain", Psychological Review 65(6) (no arXiv); as a trained layer: Rumelhart,
        Hinton & Williams 1986, "Learning representations by back-propagating errors", Nature 323.
    Shapes: input (*, in_features), weight (out_features, in_features), bias (out_features,) -> (*, out_features).
    """
    out = torch.matmul(input, weight.t())
    return out if bias is None else out + bias.to(out.dtype)  # under autocast out is bf16, as F.linear's


class Linear(ImplSwitch, nn.Linear):
    """Fully connected layer; torch.nn.Linear's parameters, arguments and initialisation (it subclasses it).

    Math: ``linear_reference``; initialised as torch.nn: W ~ U(-1/√in, 1/√in) (kaiming_uniform a=√5),
        b ~ U(-1/√in, 1/√in).
    Reference: see ``linear_reference``.
    Shapes: (*, in_features) -> (*, out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, impl: str = "auto",
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        for key, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"Linear: {key} must be an integer >= 1, got {value!r}")
        super().__init__(in_features, out_features, bias, device, dtype)
        self.impl = impl

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor) or input.dim() < 1 or input.shape[-1] != self.in_features:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise UserError(f"Linear expects input of shape (*, {self.in_features}), got {got}")
        compute = F.linear if self.resolved_impl() == "fused" else linear_reference
        return compute(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl!r}"
