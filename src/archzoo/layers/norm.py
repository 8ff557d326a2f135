"""Batch normalisation written from its equations, beside PyTorch's kernel, with torch.nn's running statistics.

``BatchNorm1d`` / ``BatchNorm2d`` subclass their torch.nn counterparts and add only the impl switch, so
``weight``, ``bias``, ``running_mean``, ``running_var`` and ``num_batches_tracked`` are torch.nn's by
construction. The reference keeps the running statistics exactly as PyTorch does: the *unbiased* batch
variance goes into ``running_var`` while the biased one normalises (STYLE pitfall: biased running variance).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch


def batch_norm_reference(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                         weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
                         momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel over the batch (and positions), then scale and shift; same contract as F.batch_norm.

    Math: training:  μ = mean_{b,h,w} x,  σ² = mean_{b,h,w} (x - μ)²  (biased), n = B·H·W
                     y = (x - μ) / √(σ² + ε) · γ + β
                     running_mean ← (1 - m) running_mean + m μ
                     running_var  ← (1 - m) running_var  + m σ² n / (n - 1)   (unbiased)
          eval:      y = (x - running_mean) / √(running_var + ε) · γ + β
          The running statistics are updated in place (as F.batch_norm does) only when training and given.
    Reference: Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network Training by Reducing
        Internal Covariate Shift", arXiv:1502.03167, Algorithm 1 (training) and Algorithm 2 (inference,
        which uses the unbiased m/(m-1) variance).
    Shapes: input (B, C) or (B, C, *) (e.g. (B, C, H, W)); running stats, weight, bias (C,) -> like input.
    Differs from paper: Algorithm 2 averages the statistics of many batches after training; PyTorch
        (followed here) keeps an exponential moving average with factor m = ``momentum`` during training.
        Low-precision inputs (bf16 under autocast) are normalised in float32 and returned in their dtype.
    """
    dims = [0, *range(2, input.dim())]
    shape = [1, -1] + [1] * (input.dim() - 2)
    compute = torch.float64 if input.dtype == torch.float64 else torch.float32
    x = input.to(compute)
    if training:
        n = input.numel() // input.shape[1]
        if n < 2:
            raise UserError(f"batch norm needs more than 1 value per channel when training, got input of shape "
                            f"{tuple(input.shape)}; use a batch larger than 1 (or eval mode)")
        mean = x.mean(dim=dims)
        var = ((x - mean.view(shape)) ** 2).mean(dim=dims)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
                running_var.mul_(1 - momentum).add_(momentum * (var * n / (n - 1)).to(running_var.dtype))
    else:
        if running_mean is None or running_var is None:
            raise UserError("batch norm in eval mode needs running statistics")
        mean, var = running_mean.to(compute), running_var.to(compute)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    if weight is not None:
        y = y * weight.to(compute).view(shape)
    if bias is not None:
        y = y + bias.to(compute).view(shape)
    return y.to(input.dtype)


class _BatchNormSwitch(ImplSwitch):
    """torch.nn's _BatchNorm.forward (momentum=None: cumulative average), with the path chosen per call."""

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if self.training and input.numel() // input.shape[1] < 2:
            raise UserError(f"{type(self).__name__} needs more than 1 value per channel when training, got input of "
                            f"shape {tuple(input.shape)}; use a batch larger than 1 (or eval mode)")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats  # buffers passed only when used or updated
        compute = F.batch_norm if self.resolved_impl() == "fused" else batch_norm_reference
        return compute(input, self.running_mean if keep else None, self.running_var if keep else None,
                       self.weight, self.bias, use_batch_stats, factor, self.eps)

    def _check_input_dim(self, input: Tensor) -> None:
        want = "(B, C, H, W)" if isinstance(self, nn.BatchNorm2d) else "(B, C) or (B, C, L)"
        dims = (4,) if isinstance(self, nn.BatchNorm2d) else (2, 3)
        if not isinstance(input, Tensor) or input.dim() not in dims or input.shape[1] != self.num_features:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise UserError(f"{type(self).__name__} expects input of shape {want} with C={self.num_features}, "
                            f"got {got}")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl!r}"


class BatchNorm2d(_BatchNormSwitch, nn.BatchNorm2d):
    """Batch normalisation over (B, H, W) per channel; torch.nn.BatchNorm2d's parameters and buffers.

    Math: ``batch_norm_reference``; γ = 1, β = 0 at initialisation, running_mean 0, running_var 1.
    Reference: Ioffe & Szegedy 2015, arXiv:1502.03167.
    Shapes: (B, C, H, W) -> (B, C, H, W).
    Differs from paper: see ``batch_norm_reference``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, impl: str = "auto", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.impl = impl


class BatchNorm1d(_BatchNormSwitch, nn.BatchNorm1d):
    """Batch normalisation of features (B, C) or sequences (B, C, L); torch.nn.BatchNorm1d's parameters and buffers.

    Math: ``batch_norm_reference``. Reference: Ioffe & Szegedy 2015, arXiv:1502.03167.
    Shapes: (B, C) or (B, C, L) -> same.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, impl: str = "auto", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.impl = impl


def layer_norm_reference(input: Tensor, normalized_shape: tuple[int, ...], weight: Tensor | None = None,
                         bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise each example over its last dimensions, with a learned gain and shift per feature.

    Math: μ = mean(x), σ² = mean((x - μ)²) over the last len(normalized_shape) dims (biased variance);
          y = (x - μ) / √(σ² + ε) ⊙ γ + β
    Reference: Ba, Kiros & Hinton 2016, "Layer Normalization", arXiv:1607.06450, Sec. 3, eq. (4).
    Shapes: input (*, *normalized_shape), weight and bias normalized_shape -> same as input.
    Differs from paper: none; statistics are computed in float32 under reduced precision, as torch does.
    """
    dims = tuple(range(-len(normalized_shape), 0))
    x = input.to(torch.promote_types(input.dtype, torch.float32))  # half types in float32; float64 stays float64
    mean = x.mean(dim=dims, keepdim=True)
    var = (x - mean).square().mean(dim=dims, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.to(x.dtype)
    if bias is not None:
        y = y + bias.to(x.dtype)
    return y.to(input.dtype)


class LayerNorm(ImplSwitch, nn.LayerNorm):
    """Layer normalisation; torch.nn.LayerNorm's parameters, arguments and initialisation (it subclasses it).

    Math: ``layer_norm_reference``; γ = 1, β = 0 at initialisation.
    Reference: Ba et al. 2016, arXiv:1607.06450.
    Shapes: (*, *normalized_shape) -> same.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, impl: str = "auto", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)
        self.impl = impl

    def forward(self, input: Tensor) -> Tensor:
        n = len(self.normalized_shape)
        if not isinstance(input, Tensor) or tuple(input.shape[input.dim() - n:]) != self.normalized_shape:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise UserError(f"LayerNorm expects input ending in {self.normalized_shape}, got {got}")
        if self.resolved_impl() == "fused":
            return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)
        return layer_norm_reference(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl!r}"
