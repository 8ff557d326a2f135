"""2-D convolution written from its definition (im2col + one matmul) beside PyTorch's kernel.

One parameter set, two paths (STYLE convention 1). ``Conv2d`` *is* a ``torch.nn.Conv2d`` (it subclasses
it and adds only the impl switch), so ``weight`` (C_out, C_in / groups, kH, kW) and ``bias`` (C_out,),
their initialisation and ``state_dict`` are torch.nn's by construction and ``load_state_dict(strict=True)``
works both ways.

- ``conv2d_reference``: gathers every receptive field into a patch tensor (im2col) and contracts it
  with the kernel, exactly the sum in the definition;
- ``conv2d_fused``: ``F.conv2d`` (oneDNN on CPU, cuDNN on GPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch

Pair = int | tuple[int, int]


def _pair(v: Pair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_padding(kernel_size: Pair, dilation: Pair) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that keeps H and W at stride 1, extra on the right/bottom as torch."""
    (kh, kw), (dh, dw) = _pair(kernel_size), _pair(dilation)
    th, tw = dh * (kh - 1), dw * (kw - 1)
    return tw // 2, tw - tw // 2, th // 2, th - th // 2


def conv2d_reference(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1,
                     padding: Pair | str = 0, dilation: Pair = 1, groups: int = 1) -> Tensor:
    """Cross-correlation of a batch of images with a bank of kernels (what deep learning calls convolution).

    Math: out[b, o, i, j] = bias[o] + Σ_c Σ_m Σ_n I[b, g·C_g + c, s_h·i + d_h·m, s_w·j + d_w·n] · K[o, c, m, n]
          with I the zero-padded input, g = o // (C_out / groups) the group of output channel o and
          C_g = C_in / groups; for one channel and unit stride this is (I*K)(i,j) = Σ_m Σ_n I(i+m, j+n) K(m,n).
          H_out = floor((H + 2p_h - d_h (kH - 1) - 1) / s_h) + 1 (likewise W_out).
          im2col: P[b, g, c, i, j, m, n] = I[b, g·C_g + c, s_h·i + d_h·m, s_w·j + d_w·n], then
          out = Σ_{c,m,n} P · K, one batched matmul per group.
    Reference: LeCun, Boser, Denker, Henderson, Howard, Hubbard & Jackel 1989, "Backpropagation Applied
        to Handwritten Zip Code Recognition", Neural Computation 1(4) (no arXiv); im2col: Chellapilla,
        Puri & Simard 2006, "High Performance Convolutional Neural Networks for Document Processing";
        dilation: Yu & Koltun 2016, arXiv:1511.07122, eq. (2); groups: Krizhevsky et al. 2012 (AlexNet's
        two GPU halves).
    Shapes: input (B, C_in, H, W), weight (C_out, C_in / groups, kH, kW), bias (C_out,) -> (B, C_out, H_out, W_out).
        ``padding`` is an int, a pair, "valid" (0) or "same" (stride 1 only).
    Differs from paper: none for the sum; the kernel is not flipped (cross-correlation), as in every
        deep-learning library.
    """
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    out_ch, c_g, kh, kw = weight.shape
    if isinstance(padding, str):
        pads = same_padding((kh, kw), (dh, dw)) if padding == "same" else (0, 0, 0, 0)
    else:
        ph, pw = _pair(padding)
        pads = (pw, pw, ph, ph)
    x = F.pad(input, pads)
    b, c_in = x.shape[:2]
    # every (i, j) window of the dilated kernel's extent, then keep every d-th tap: (B, C, H_out, W_out, kH, kW)
    patches = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]
    h_out, w_out = patches.shape[2:4]
    patches = patches.reshape(b, groups, c_g, h_out, w_out, kh, kw)
    kernels = weight.reshape(groups, out_ch // groups, c_g, kh, kw)
    out = torch.einsum("bgcijmn,gocmn->bgoij", patches, kernels).reshape(b, out_ch, h_out, w_out)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1)  # under autocast out is bf16, as F.conv2d's
    return out


def conv2d_fused(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1,
                 padding: Pair | str = 0, dilation: Pair = 1, groups: int = 1) -> Tensor:
    """``conv2d_reference`` computed by ``F.conv2d``; same arguments, same result."""
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


class Conv2d(ImplSwitch, nn.Conv2d):
    """2-D convolution layer; torch.nn.Conv2d's parameters, arguments and initialisation (it subclasses it).

    Math: ``conv2d_reference``; weights initialised as torch.nn: kaiming_uniform(a=√5), i.e.
        U(-1/√fan_in, 1/√fan_in), bias U(-1/√fan_in, 1/√fan_in), fan_in = C_in / groups · kH · kW.
    Reference: see ``conv2d_reference``.
    Shapes: input (B, C_in, H, W) -> (B, C_out, H_out, W_out).
    Differs from paper: only zero padding (``padding_mode='zeros'``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1,
                 padding: Pair | str = 0, dilation: Pair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", impl: str = "auto", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        if padding_mode != "zeros":
            raise UserError(f"Conv2d: only padding_mode='zeros' is implemented, got {padding_mode!r}")
        for key, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"Conv2d: {key} must be an integer >= 1, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise UserError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                            f"out_channels={out_channels}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.impl = impl

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor) or input.dim() != 4 or input.shape[1] != self.in_channels:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise UserError(f"Conv2d expects input of shape (B, {self.in_channels}, H, W), got {got}")
        compute = conv2d_fused if self.resolved_impl() == "fused" else conv2d_reference
        return compute(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl!r}"
