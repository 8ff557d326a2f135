"""Pointwise nonlinearities used between layers, written from their definitions beside torch's kernels."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from archzoo.errors import unknown


def relu_reference(x: Tensor) -> Tensor:
    """Math: relu(x) = max(0, x). Reference: Nair & Hinton 2010, "Rectified Linear Units Improve
    Restricted Boltzmann Machines", ICML (no arXiv). Shapes: any -> same."""
    return torch.where(x > 0, x, torch.zeros_like(x))


def gelu_reference(x: Tensor) -> Tensor:
    """Math: gelu(x) = x Φ(x) = x · ½ (1 + erf(x / √2)), the exact form (not the tanh approximation).
    Reference: Hendrycks & Gimpel 2016, "Gaussian Error Linear Units (GELUs)", arXiv:1606.08415, Sec. 2.
    Shapes: any -> same."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "relu": (relu_reference, F.relu),
    "gelu": (gelu_reference, F.gelu),
}


def activation(name: str, impl: str) -> Callable[[Tensor], Tensor]:
    """The nonlinearity ``name`` on the resolved path ``impl`` ("reference" or "fused")."""
    if name not in ACTIVATIONS:
        raise unknown("activation", name, ACTIVATIONS)
    reference, fused = ACTIVATIONS[name]
    return reference if impl == "reference" else fused
