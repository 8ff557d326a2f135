"""Max, average and adaptive average pooling written from their window definitions, beside PyTorch's kernels.

Each module subclasses its torch.nn counterpart (no parameters; same arguments, same ``extra_repr``) and
adds the impl switch. The references cut the padded input into windows with ``Tensor.unfold`` and
reduce each window; window placement, ``ceil_mode`` and the average's divisor follow PyTorch exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch

Pair = int | tuple[int, int]


def _pair(v: Pair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Number of windows along one axis, as PyTorch counts them.

    Math: n = floor_or_ceil((size + 2p - d(k - 1) - 1) / s) + 1, and in ceil mode the last window must
        start inside the input or its left padding: if (n - 1) s >= size + p then n -= 1.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    n = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (n - 1) * stride >= size + padding:
        n -= 1
    if n < 1:
        raise UserError(f"pooling window {kernel} (dilation {dilation}, padding {padding}) does not fit an input of "
                        f"size {size}; give larger images or a smaller kernel")
    return n


def _windows(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int], ceil_mode: bool, fill: float) -> Tensor:
    """(B, C, H_out, W_out, kH, kW): window (i, j) of x padded with ``fill`` (ceil mode pads the far side more)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph > kh // 2 or pw > kw // 2:
        raise UserError(f"pooling padding {padding} must be at most half the kernel {kernel}")
    h, w = x.shape[-2:]
    h_out = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    w_out = pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    # far-side padding so the last window fits; negative values crop rows no window reaches
    bottom = (h_out - 1) * sh + dh * (kh - 1) + 1 - h - ph
    right = (w_out - 1) * sw + dw * (kw - 1) + 1 - w - pw
    x = F.pad(x, (pw, right, ph, bottom), value=fill)
    return x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]


def max_pool2d_reference(input: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0,
                         dilation: Pair = 1, ceil_mode: bool = False) -> Tensor:
    """The largest value in each (dilated) window; padding never wins (it is -inf).

    Math: out[b, c, i, j] = max_{m < kH, n < kW} x[b, c, s_h·i + d_h·m - p_h, s_w·j + d_w·n - p_w]
    Reference: Ranzato, Huang, Boureau & LeCun 2007, "Unsupervised Learning of Invariant Feature
        Hierarchies with Applications to Object Recognition", CVPR (no arXiv); overlapping max pooling
        (kernel 3, stride 2): Krizhevsky, Sutskever & Hinton 2012, NeurIPS, Sec. 3.4.
    Shapes: input (B, C, H, W) -> (B, C, H_out, W_out), sizes as ``pool_output_size``; stride
        defaults to the kernel size. The gradient flows to one maximum per window.
    """
    kernel = _pair(kernel_size)
    windows = _windows(input, kernel, _pair(stride or kernel_size), _pair(padding), _pair(dilation), ceil_mode,
                       float("-inf"))
    return windows.flatten(-2).max(dim=-1).values


def avg_pool2d_reference(input: Tensor, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0,
                         ceil_mode: bool = False, count_include_pad: bool = True,
                         divisor_override: int | None = None) -> Tensor:
    """The mean of each window, with PyTorch's divisor at the borders.

    Math: out[b, c, i, j] = (1 / N_ij) Σ_{m < kH, n < kW} x̃[b, c, s_h·i + m - p_h, s_w·j + n - p_w]
          with x̃ the zero-padded input; N_ij counts the window's positions inside the padded input
          (count_include_pad) or inside the input itself; a window reaching past the padding in ceil
          mode is cut there. ``divisor_override`` replaces N_ij.
    Reference: LeCun et al. 1998, "Gradient-based learning applied to document recognition", Proc. IEEE
        86(11) (subsampling layers, without their trainable coefficient); global average pooling: Lin,
        Chen & Yan 2014, "Network In Network", arXiv:1312.4400, Sec. 3.2.
    Shapes: input (B, C, H, W) -> (B, C, H_out, W_out); stride defaults to the kernel size.
    """
    kernel, step, pad = _pair(kernel_size), _pair(stride or kernel_size), _pair(padding)
    windows = _windows(input, kernel, step, pad, (1, 1), ceil_mode, 0.0)
    total = windows.sum(dim=(-2, -1))
    if divisor_override:
        return total / divisor_override
    counts = []
    for axis, (k, s, p) in enumerate(zip(kernel, step, pad, strict=True)):
        size, n_out = input.shape[2 + axis], total.shape[2 + axis]
        start = torch.arange(n_out, device=input.device) * s - p
        end = torch.clamp(start + k, max=size + p)  # a window never counts past the padding
        if not count_include_pad:
            start, end = start.clamp(min=0), end.clamp(max=size)
        counts.append(end - start)
    divisor = counts[0][:, None] * counts[1][None, :]
    return total / divisor.to(total.dtype)


def adaptive_avg_pool2d_reference(input: Tensor, output_size: Pair) -> Tensor:
    """Average pooling onto a fixed output grid: window i spans [floor(i H / H_out), ceil((i+1) H / H_out)).

    Math: out[b, c, i, j] = mean of x[b, c, floor(iH/H_o) : ceil((i+1)H/H_o), floor(jW/W_o) : ceil((j+1)W/W_o)]
    Reference: He, Zhang, Ren & Sun 2014, "Spatial Pyramid Pooling in Deep Convolutional Networks",
        arXiv:1406.4729, Sec. 2.3 (bins of adaptive size); output 1x1 is global average pooling
        (Lin et al. 2014, arXiv:1312.4400).
    Shapes: input (B, C, H, W) -> (B, C, H_out, W_out); ``None`` in output_size keeps that size.
    """
    h, w = input.shape[-2:]
    h_out, w_out = (output_size, output_size) if isinstance(output_size, int) else output_size
    h_out, w_out = h_out or h, w_out or w
    rows = []
    for i in range(h_out):
        r0, r1 = (i * h) // h_out, math.ceil((i + 1) * h / h_out)
        rows.append(torch.stack([input[..., r0:r1, (j * w) // w_out:math.ceil((j + 1) * w / w_out)].mean(dim=(-2, -1))
                                 for j in range(w_out)], dim=-1))
    return torch.stack(rows, dim=-2)


class MaxPool2d(ImplSwitch, nn.MaxPool2d):
    """Max pooling; torch.nn.MaxPool2d's arguments (it subclasses it), ``return_indices`` not supported.

    Math: ``max_pool2d_reference``. Reference: see there.
    Shapes: (B, C, H, W) -> (B, C, H_out, W_out).
    """

    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0, dilation: Pair = 1,
                 return_indices: bool = False, ceil_mode: bool = False, impl: str = "auto"):
        if return_indices:
            raise UserError("MaxPool2d: return_indices is not supported")
        super().__init__(kernel_size, stride, padding, dilation, False, ceil_mode)
        self.impl = impl

    def forward(self, input: Tensor) -> Tensor:
        if self.resolved_impl() == "fused":
            return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        return max_pool2d_reference(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool2d(ImplSwitch, nn.AvgPool2d):
    """Average pooling; torch.nn.AvgPool2d's arguments (it subclasses it).

    Math: ``avg_pool2d_reference``. Reference: see there.
    Shapes: (B, C, H, W) -> (B, C, H_out, W_out).
    """

    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None, impl: str = "auto"):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        self.impl = impl

    def forward(self, input: Tensor) -> Tensor:
        args = (self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                self.divisor_override)
        if self.resolved_impl() == "fused":
            return F.avg_pool2d(input, *args)
        return avg_pool2d_reference(input, *args)


class AdaptiveAvgPool2d(ImplSwitch, nn.AdaptiveAvgPool2d):
    """Adaptive average pooling (``output_size=1`` is global average pooling); torch.nn's arguments.

    Math: ``adaptive_avg_pool2d_reference``. Reference: see there.
    Shapes: (B, C, H, W) -> (B, C, H_out, W_out).
    """

    def __init__(self, output_size: Pair, impl: str = "auto"):
        super().__init__(output_size)
        self.impl = impl

    def forward(self, input: Tensor) -> Tensor:
        if self.resolved_impl() == "fused":
            return F.adaptive_avg_pool2d(input, self.output_size)
        return adaptive_avg_pool2d_reference(input, self.output_size)
