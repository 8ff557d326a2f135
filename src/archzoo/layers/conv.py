"""2-D convolution and transposed convolution written from their definitions (im2col and col2im around
one contraction) beside PyTorch's kernels.

One parameter set, two paths (STYLE convention 1). ``Conv2d`` *is* a ``torch.nn.Conv2d`` and
``ConvTranspose2d`` a ``torch.nn.ConvTranspose2d`` (they subclass them and add only the impl switch), so
``weight`` ((C_out, C_in / groups, kH, kW), transposed: (C_in, C_out / groups, kH, kW)) and ``bias``
(C_out,), their initialisation and ``state_dict`` are torch.nn's by construction and
``load_state_dict(strict=True)`` works both ways.

- ``conv2d_reference``: gathers every receptive field into a patch tensor (im2col) and contracts it
  with the kernel, exactly the sum in the definition; ``conv2d_fused``: ``F.conv2d``.
- ``conv_transpose2d_reference``: every input pixel stamps its kernel-weighted copy onto the output
  (col2im of the contraction, the adjoint of im2col); ``conv_transpose2d_fused``: ``F.conv_transpose2d``.
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


def check_channels(layer: str, in_channels: int, out_channels: int, groups: int, padding_mode: str) -> None:
    """One line for a channel count, group count or padding mode the layer cannot take."""
    if padding_mode != "zeros":
        raise UserError(f"{layer}: only padding_mode='zeros' is implemented, got {padding_mode!r}")
    for key, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{layer}: {key} must be an integer >= 1, got {value!r}")
    if in_channels % groups or out_channels % groups:
        raise UserError(f"{layer}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")


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
        check_channels("Conv2d", in_channels, out_channels, groups, padding_mode)
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


def conv_transpose2d_reference(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1,
                               padding: Pair = 0, output_padding: Pair = 0, groups: int = 1,
                               dilation: Pair = 1) -> Tensor:
    """Transposed convolution (a "deconvolution"): the gradient of ``conv2d_reference`` with respect to its
    input, used as a learned upsampling.

    Math: out[b, o, y, x] = bias[o] + Σ_c Σ_{i,j,m,n : s_h i + d_h m - p_h = y, s_w j + d_w n - p_w = x}
          I[b, g·C_g + c, i, j] · K[g·C_g + c, o', m, n], with g the group of output channel o and o' its
          index in the group: every input pixel adds its value times the kernel, placed s pixels apart.
          H_out = (H - 1) s_h - 2 p_h + d_h (kH - 1) + output_padding_h + 1 (likewise W_out).
          col2im: C[b, (g, o', m, n), (i, j)] = Σ_c I[b, g·C_g + c, i, j] K[g·C_g + c, o', m, n], then the
          overlapping kernel footprints are summed into the (uncropped) output by ``F.fold``, the adjoint
          of the ``unfold`` that im2col is, and the padding is cropped off.
    Reference: Zeiler, Krishnan, Taylor & Fergus 2010, "Deconvolutional Networks", CVPR; as the adjoint
        of convolution: Dumoulin & Visin 2016, "A guide to convolution arithmetic for deep learning",
        arXiv:1603.07285, Sec. 4; the DCGAN generator: Radford et al. 2015, arXiv:1511.06434.
    Shapes: input (B, C_in, H, W), weight (C_in, C_out / groups, kH, kW), bias (C_out,) -> (B, C_out, H_out, W_out).
    Differs from paper: none; output_padding (0 <= it < stride or dilation) picks among the output sizes
        that a strided convolution maps to the same input size, as torch.nn does.
    """
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)
    b, c_in, h, w = input.shape
    _, out_g, kh, kw = weight.shape
    c_g = c_in // groups
    x = input.reshape(b, groups, c_g, h * w)
    kernels = weight.reshape(groups, c_g, out_g * kh * kw)
    columns = torch.einsum("bgcl,gck->bgkl", x, kernels).reshape(b, groups * out_g * kh * kw, h * w)
    full = ((h - 1) * sh + dh * (kh - 1) + 1 + oh, (w - 1) * sw + dw * (kw - 1) + 1 + ow)
    out = F.fold(columns, full, (kh, kw), dilation=(dh, dw), stride=(sh, sw))
    out = out[:, :, ph:full[0] - ph, pw:full[1] - pw]
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1)
    return out


def conv_transpose2d_fused(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Pair = 1,
                           padding: Pair = 0, output_padding: Pair = 0, groups: int = 1, dilation: Pair = 1) -> Tensor:
    """``conv_transpose2d_reference`` computed by ``F.conv_transpose2d``; same arguments, same result."""
    return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)


class ConvTranspose2d(ImplSwitch, nn.ConvTranspose2d):
    """2-D transposed convolution layer; torch.nn.ConvTranspose2d's parameters, arguments and
    initialisation (it subclasses it).

    Math: ``conv_transpose2d_reference``.
    Reference: see ``conv_transpose2d_reference``.
    Shapes: input (B, C_in, H, W) -> (B, C_out, H_out, W_out); ``output_size`` in forward picks the
        output padding, as torch.nn.
    Differs from paper: only zero padding (``padding_mode='zeros'``, the only mode torch.nn allows here).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0,
                 output_padding: Pair = 0, groups: int = 1, bias: bool = True, dilation: Pair = 1,
                 padding_mode: str = "zeros", impl: str = "auto", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None):
        check_channels("ConvTranspose2d", in_channels, out_channels, groups, padding_mode)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias,
                         dilation, padding_mode, device, dtype)
        self.impl = impl

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        if not isinstance(input, Tensor) or input.dim() != 4 or input.shape[1] != self.in_channels:
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise UserError(f"ConvTranspose2d expects input of shape (B, {self.in_channels}, H, W), got {got}")
        output_padding = self._output_padding(input, output_size, list(self.stride), list(self.padding),
                                              list(self.kernel_size), 2, list(self.dilation))
        compute = conv_transpose2d_fused if self.resolved_impl() == "fused" else conv_transpose2d_reference
        return compute(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                       self.dilation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl!r}"
