"""Positional information for attention, which by itself ignores order: sinusoidal encodings,
learned position embeddings and rotary embeddings.

Each comes as a reference written element by element from the paper's formula and a vectorised
fused path; the tests prove the two equal.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch


def sinusoidal_reference(length: int, dim: int, base: float = 10000.0) -> Tensor:
    """The sinusoidal table, one element at a time.

    Math: PE(pos, 2i) = sin(pos / base^(2i/D)),  PE(pos, 2i+1) = cos(pos / base^(2i/D))
    Reference: Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, Sec. 3.5.
    Shapes: -> (length, dim); dim must be even.
    """
    table = torch.zeros(length, dim, dtype=torch.float64)
    for pos in range(length):
        for i in range(dim // 2):
            angle = pos / base ** (2 * i / dim)
            table[pos, 2 * i] = math.sin(angle)
            table[pos, 2 * i + 1] = math.cos(angle)
    return table.float()


def sinusoidal_fused(length: int, dim: int, base: float = 10000.0, offset: int = 0,
                     device: torch.device | str | None = None) -> Tensor:
    """``sinusoidal_reference`` for positions offset .. offset+length-1, vectorised (computed in float64)."""
    pos = torch.arange(offset, offset + length, dtype=torch.float64, device=device)[:, None]
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)
    angles = pos * inv_freq  # (length, dim/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).float()


class SinusoidalPositionalEncoding(ImplSwitch, nn.Module):
    """Adds the fixed sinusoidal encoding to token embeddings; no parameters, any length.

    Math: y_t = x_t + PE(offset + t), PE as in ``sinusoidal_reference``.
    Reference: Vaswani et al. 2017, arXiv:1706.03762, Sec. 3.5.
    Shapes: x (B, T, D) -> (B, T, D).
    """

    def __init__(self, dim: int, base: float = 10000.0, impl: str = "auto"):
        super().__init__()
        if dim < 2 or dim % 2:
            raise UserError(f"sinusoidal positions need an even width >= 2, got {dim}")
        self.dim, self.base = dim, base
        self.impl = impl

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        if self.resolved_impl() == "reference":
            table = sinusoidal_reference(offset + x.shape[1], self.dim, self.base)[offset:].to(x.device)
        else:
            table = sinusoidal_fused(x.shape[1], self.dim, self.base, offset, x.device)
        return x + table.to(x.dtype)


class LearnedPositionalEmbedding(nn.Embedding):
    """One trained vector per position up to ``max_len`` (GPT, BERT); an ``nn.Embedding``.

    Reference: Gehring et al. 2017, "Convolutional Sequence to Sequence Learning", arXiv:1705.03122,
        Sec. 3.1; Radford et al. 2018 (GPT).
    Shapes: x (B, T, D) -> x + P[offset : offset + T], (B, T, D).
    """

    def __init__(self, max_len: int, dim: int):
        super().__init__(max_len, dim)
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:  # type: ignore[override]
        end = offset + x.shape[1]
        if end > self.num_embeddings:
            raise UserError(f"sequence of {end} positions is longer than the model's maximum context "
                            f"{self.num_embeddings}; shorten the input or train with a longer context")
        return x + self.weight[offset:end].to(x.dtype)


def rotary_reference(x: Tensor, offset: int = 0, base: float = 10000.0) -> Tensor:
    """Rotate each pair of features (x_2i, x_2i+1) at position m by the angle m·θ_i.

    Math: θ_i = base^(-2i/d);  [y_2i; y_2i+1] = [[cos mθ_i, -sin mθ_i], [sin mθ_i, cos mθ_i]] [x_2i; x_2i+1]
        so that <R_m q, R_n k> depends on m - n only.
    Reference: Su, Lu, Pan, Murtadha, Wen & Liu 2021, "RoFormer: Enhanced Transformer with Rotary
        Position Embedding", arXiv:2104.09864, Sec. 3.4.2, eq. (34).
    Shapes: x (..., T, d) with d even -> (..., T, d); positions offset .. offset+T-1.
    """
    T, d = x.shape[-2], x.shape[-1]
    out = torch.empty_like(x)
    for i in range(d // 2):
        theta = base ** (-2 * i / d)
        angle = torch.arange(offset, offset + T, dtype=torch.float64, device=x.device) * theta
        cos, sin = angle.cos().to(x.dtype)[:, None], angle.sin().to(x.dtype)[:, None]
        even, odd = x[..., 2 * i:2 * i + 1], x[..., 2 * i + 1:2 * i + 2]
        out[..., 2 * i:2 * i + 1] = even * cos - odd * sin
        out[..., 2 * i + 1:2 * i + 2] = even * sin + odd * cos
    return out


@functools.lru_cache(maxsize=16)
def rotary_table(length: int, d: int, base: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """e^{i m θ_i} for positions m < ``length``: (length, d/2) complex, built in float64 once per (length,
    width, device, dtype) and shared by every layer and step."""
    with torch.inference_mode(False):  # a table first built while generating must still serve training
        inv_freq = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=device) / d)
        angles = torch.arange(length, dtype=torch.float64, device=device)[:, None] * inv_freq
        return torch.polar(torch.ones_like(angles), angles).to(dtype)


def rotary_fused(x: Tensor, offset: int = 0, base: float = 10000.0) -> Tensor:
    """``rotary_reference`` as one complex multiplication: (x_2i + i·x_2i+1) · e^{i m θ_i}. The table is
    sized to a power of two, so generation's growing offsets reuse one table."""
    T, d = x.shape[-2], x.shape[-1]
    if torch.compiler.is_exporting():
        return rotary_traceable(x, offset, base)
    real = torch.promote_types(x.dtype, torch.float32)  # half types in float32; float64 stays float64
    complex_dtype = torch.complex128 if real == torch.float64 else torch.complex64
    rotation = rotary_table(1 << (offset + T - 1).bit_length(), d, base, x.device, complex_dtype)[offset:offset + T]
    pairs = torch.view_as_complex(x.to(real).unflatten(-1, (d // 2, 2)).contiguous())  # (..., T, d/2)
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


def rotary_traceable(x: Tensor, offset: int = 0, base: float = 10000.0) -> Tensor:
    """``rotary_fused`` in real arithmetic with angles built for the positions at hand: no complex
    numbers and no table sized by a Python int, so ``torch.export`` keeps the length dynamic (ONNX has
    no complex type)."""
    d = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    positions = torch.arange(x.shape[-2], dtype=torch.float64, device=x.device) + offset
    angles = positions[:, None] * inv_freq  # (T, d/2)
    real = torch.promote_types(x.dtype, torch.float32)
    cos, sin = angles.cos().to(real), angles.sin().to(real)
    pairs = x.to(real).unflatten(-1, (d // 2, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2).to(x.dtype)


class RotaryEmbedding(ImplSwitch, nn.Module):
    """Applies rotary position embedding to per-head queries and keys (no parameters).

    Reference: Su et al. 2021, arXiv:2104.09864. Shapes: q (B, H, T, d), k (B, H, S, d) -> same;
    queries sit at positions S - T .. S - 1 plus ``offset`` (they are the last T of the keys).
    """

    def __init__(self, head_dim: int, base: float = 10000.0, impl: str = "auto"):
        super().__init__()
        if head_dim < 2 or head_dim % 2:
            raise UserError(f"rotary embedding needs an even head width, got {head_dim}")
        self.base = base
        self.impl = impl

    def forward(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        rotate = rotary_reference if self.resolved_impl() == "reference" else rotary_fused
        q_offset = offset + k.shape[-2] - q.shape[-2]
        return rotate(q, q_offset, self.base), rotate(k, offset, self.base)
