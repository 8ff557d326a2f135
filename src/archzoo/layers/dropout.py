"""Dropout (inverted: scaled at training time) written out beside ``F.dropout``; torch.nn.Dropout's arguments.

On CPU the reference draws its mask exactly as PyTorch's kernel does (one ``bernoulli_(1 - p)`` over the
input's shape), so under the same seed both paths drop the same units; on CUDA the fused kernel uses
another random stream, so the two agree in distribution only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch


def dropout_reference(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the survivors by 1 / (1 - p).

    Math: m_k ~ Bernoulli(1 - p) independently;  y = x ⊙ m / (1 - p)  (training);  y = x (eval)
    Reference: Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, "Dropout: A Simple Way to
        Prevent Neural Networks from Overfitting", JMLR 15 (first as Hinton et al. 2012, arXiv:1207.0580).
    Shapes: any -> same.
    Differs from paper: the paper scales the weights by (1 - p) at test time; PyTorch (followed here)
        scales by 1 / (1 - p) at training time instead, so evaluation is the identity. p = 1 gives zeros.
    """
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * torch.zeros_like(input)
    mask = torch.empty_like(input).bernoulli_(1 - p)
    return input * mask.div_(1 - p)


class Dropout(ImplSwitch, nn.Dropout):
    """Dropout; torch.nn.Dropout's arguments (it subclasses it). ``inplace`` is accepted and ignored by the reference.

    Math: ``dropout_reference``. Reference: Srivastava et al. 2014 (JMLR 15).
    Shapes: any -> same.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, impl: str = "auto"):
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise UserError(f"Dropout: p must be a number in [0, 1], got {p!r}")
        super().__init__(p, inplace)
        self.impl = impl

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:  # the identity: skip the kernel call (per-token cost in generation)
            return input
        if self.resolved_impl() == "fused":
            return F.dropout(input, self.p, self.training, self.inplace)
        return dropout_reference(input, self.p, self.training)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl!r}"
