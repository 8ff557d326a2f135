"""Attention masks: one convention for the whole library, and the converters to others.

archzoo's masks are boolean and **True = may attend** — the convention of
``F.scaled_dot_product_attention``. ``torch.nn.MultiheadAttention`` and the ``nn.Transformer*``
layers use the opposite one (True = masked out) for both ``attn_mask`` and ``key_padding_mask``;
``to_torch_mask`` converts, and nothing else in archzoo flips a mask.

Shapes: B batch, H heads, T queries, S keys.
"""

from __future__ import annotations

import torch
from torch import Tensor

from archzoo.errors import UserError


def causal_mask(query_len: int, key_len: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """(T, S) mask letting query i attend to keys j <= i + (S - T).

    The diagonal is aligned bottom-right: when the T queries continue S - T cached positions (a KV
    cache), the last query sees every key. With S == T this is the usual lower triangle.
    """
    key_len = query_len if key_len is None else key_len
    if key_len < query_len:
        raise ValueError(f"a causal mask needs key_len >= query_len, got {key_len} < {query_len}")
    rows = torch.arange(query_len, device=device)[:, None] + (key_len - query_len)
    return torch.arange(key_len, device=device)[None, :] <= rows


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B, S) mask, True at the first ``lengths[b]`` positions of row b (the real tokens)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def to_torch_mask(mask: Tensor | None) -> Tensor | None:
    """archzoo's True = may attend -> torch.nn's True = may not (``attn_mask``, ``key_padding_mask``)."""
    return None if mask is None else ~mask


def attention_mask(batch: int, query_len: int, key_len: int, attn_mask: Tensor | None = None,
                   key_mask: Tensor | None = None, is_causal: bool = False,
                   device: torch.device | str | None = None) -> Tensor | None:
    """Combine the three ways of restricting attention into one boolean mask broadcastable to (B, H, T, S).

    ``attn_mask``: (T, S), (B, T, S) or (B, H, T, S), True = may attend. ``key_mask``: (B, S), True =
    a real key (False = padding). ``is_causal``: add ``causal_mask(T, S)``. Returns None when nothing
    restricts attention (the fused kernels are fastest without a mask). A wrong shape raises a
    one-line UserError naming the shapes accepted.
    """
    combined = None
    if attn_mask is not None:
        if attn_mask.dtype != torch.bool:
            raise UserError(f"attention masks are boolean (True = may attend), got dtype {attn_mask.dtype}")
        shapes = [(query_len, key_len), (batch, query_len, key_len)]
        if attn_mask.dim() == 4:
            shapes.append((batch, attn_mask.shape[1], query_len, key_len))
        if tuple(attn_mask.shape) not in shapes:
            raise UserError(f"attn_mask has shape {tuple(attn_mask.shape)}; expected (T, S) = {(query_len, key_len)}, "
                            f"(B, T, S) = {(batch, query_len, key_len)} or (B, H, T, S)")
        combined = attn_mask if attn_mask.dim() == 4 else attn_mask.view(-1, 1, query_len, key_len)
    if key_mask is not None:
        if key_mask.dtype != torch.bool or tuple(key_mask.shape) != (batch, key_len):
            raise UserError(f"key_mask must be a boolean (B, S) = {(batch, key_len)} tensor (True = real token), "
                            f"got {key_mask.dtype} {tuple(key_mask.shape)}")
        keys = key_mask[:, None, None, :]
        combined = keys if combined is None else combined & keys
    if is_causal:
        causal = causal_mask(query_len, key_len, device)
        combined = causal if combined is None else combined & causal
    return combined
