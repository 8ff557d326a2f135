"""Attention: scaled dot-product, multi-head and additive (Bahdanau) attention.

One parameter set, two paths (STYLE convention 1): ``*_reference`` functions written from the
papers' equations, and fused paths on ``F.scaled_dot_product_attention`` (flash / memory-efficient
kernels). ``MultiheadAttention`` subclasses ``torch.nn.MultiheadAttention``, so its parameters
(``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``) and their
initialisation are torch.nn's and ``load_state_dict(strict=True)`` works both ways.

Masks follow archzoo's one convention (layers/masks.py): boolean, True = may attend. A query
whose every key is masked attends to nothing: its weights and output are zero (the fused CPU
kernel's behaviour, kept on every path and device), where ``torch.nn.MultiheadAttention`` gives NaN.

Shapes: B batch, H heads, T queries, S keys, D model width, d_k = D / H per head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.impl import ImplSwitch
from archzoo.layers.linear import Linear, linear_reference
from archzoo.layers.masks import attention_mask, causal_mask
from archzoo.layers.positional import RotaryEmbedding

KVCache = tuple[Tensor, Tensor]  # per-head keys and values, each (B, H, S, d_k)


class KVBuffer:
    """A KV cache that grows in place: keys and values live in buffers with spare positions, so
    appending T positions writes T positions, where ``torch.cat`` would copy the whole cache (at
    batch 1 that copy costs as much as a layer's matmuls). The buffers double when full, so copying
    stays O(1) per position on average.

    Continuing a KVBuffer mutates it: the state passed in is consumed (continuing the same state twice
    overwrites the first continuation). It is meant for inference (autograd would see the buffers
    change); under grad, ``MultiheadAttention`` concatenates tuples instead.
    Shapes: keys and values (B, H, S, d_k).
    """

    def __init__(self, keys: Tensor, values: Tensor):
        self.length = 0
        self._keys, self._values = keys[:, :, :0], values[:, :, :0]
        self.extend(keys, values)

    @property
    def keys(self) -> Tensor:
        return self._keys[:, :, :self.length]

    @property
    def values(self) -> Tensor:
        return self._values[:, :, :self.length]

    def extend(self, keys: Tensor, values: Tensor) -> KVCache:
        """Append (B, H, T, d_k) keys and values; returns all S + T of each."""
        end = self.length + keys.shape[2]
        if end > self._keys.shape[2]:
            self._keys, self._values = self._grown(self._keys, end), self._grown(self._values, end)
        self._keys[:, :, self.length:end] = keys
        self._values[:, :, self.length:end] = values
        self.length = end
        return self.keys, self.values

    def _grown(self, buffer: Tensor, needed: int) -> Tensor:
        B, H, _, d = buffer.shape
        grown = buffer.new_empty(B, H, max(2 * needed, 16), d)
        grown[:, :, :self.length] = buffer[:, :, :self.length]
        return grown

# ---------------------------------------------------------------------------------------------------
# Scaled dot-product attention.


def scaled_dot_product_attention_reference(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None,
                                           is_causal: bool = False, dropout_p: float = 0.0,
                                           scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Attention of each query over the keys, written out; returns the output and the weights.

    Math: A = softmax(Q Kᵀ · s + M), s = 1/√d_k, M_ij = 0 where query i may attend to key j, else -∞
          out = dropout(A) V
    Reference: Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin 2017, "Attention
        Is All You Need", arXiv:1706.03762, Sec. 3.2.1, eq. (1).
    Shapes: query (..., T, d_k), key (..., S, d_k), value (..., S, d_v), mask broadcastable to
        (..., T, S) -> out (..., T, d_v), weights (..., T, S) (before dropout).
    Differs from paper: a fully masked row gets zero weights (the softmax over no keys is undefined).
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        causal = causal_mask(query.shape[-2], key.shape[-2], query.device)
        mask = causal if mask is None else mask & causal
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1).to(query.dtype)
    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return torch.matmul(dropped, value), weights


def scaled_dot_product_attention_fused(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None,
                                       is_causal: bool = False, dropout_p: float = 0.0,
                                       scale: float | None = None) -> Tensor:
    """``scaled_dot_product_attention_reference``'s output on ``F.scaled_dot_product_attention``."""
    if is_causal and query.shape[-2] == 1:
        is_causal = False  # one query after a cache sees every key: no mask to build (each generated token)
    if is_causal and (mask is not None or query.shape[-2] != key.shape[-2]):
        # the kernel's own is_causal aligns the diagonal top-left; queries after a cache need bottom-right
        causal = causal_mask(query.shape[-2], key.shape[-2], query.device)
        mask, is_causal = (causal if mask is None else mask & causal), False
    dtype = query.dtype
    if query.device.type == "cpu" and dtype == torch.bfloat16 and query.requires_grad and torch.is_grad_enabled():
        # the CPU flash kernel's backward is about 4x slower in bf16 than in float32 (measured at d_k 32, T 64;
        # benchmarks/README.md, "Performance round 2"), so a bf16 training step attends in float32 (autocast
        # off: it would cast the inputs back to bf16)
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(query.float(), key.float(), value.float(), attn_mask=mask,
                                                 dropout_p=dropout_p, is_causal=is_causal, scale=scale).to(dtype)
    else:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout_p,
                                             is_causal=is_causal, scale=scale)
    if mask is not None:  # zero rows with no key on every backend (some CUDA kernels give NaN there)
        out = torch.where(mask.any(dim=-1, keepdim=True), out, 0.0)
    return out


# ---------------------------------------------------------------------------------------------------
# Multi-head attention.


class MultiheadAttention(ImplSwitch, nn.MultiheadAttention):
    """Multi-head attention over torch.nn.MultiheadAttention's parameters (it subclasses it), batch-first.

    Math: head_h = Attention(Q W_h^Q, K W_h^K, V W_h^V);  out = Concat(head_1, ..., head_H) W^O
        with [W^Q; W^K; W^V] = ``in_proj_weight`` (3D, D) and W^O = ``out_proj.weight``.
    Reference: Vaswani et al. 2017, arXiv:1706.03762, Sec. 3.2.2.
    Shapes: query (B, T, D), key and value (B, S, D) (default: the query, self-attention) -> out (B, T, D);
        weights (B, H, T, S) when ``need_weights``.
    Differs from torch.nn: batch-first always; masks are True = may attend (``attn_mask`` (T, S),
        (B, T, S) or (B, H, T, S); ``key_mask`` (B, S), True = real token); weights come per head,
        not averaged; keys and values have the model width (no ``kdim``/``vdim``); a query with no
        key to attend to gives zeros, not NaN.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True, rotary: bool = False,
                 impl: str = "auto", device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise UserError(f"attention width {embed_dim} is not divisible by num_heads={num_heads}; "
                            "choose a width that is a multiple of the number of heads")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"attention dropout must be in [0, 1), got {dropout}")
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=True, device=device, dtype=dtype)
        self.head_dim = embed_dim // num_heads
        # the impl switch on torch.nn's out_proj: the same parameters moved into an archzoo Linear
        # (built on the meta device, so the random stream stays torch.nn's)
        initialised, self.out_proj = self.out_proj, Linear(embed_dim, embed_dim, bias=bias, device="meta")
        self.out_proj.weight, self.out_proj.bias = initialised.weight, initialised.bias
        # rotary position embedding of self-attention queries and keys (no parameters)
        self.rotary = RotaryEmbedding(self.head_dim) if rotary else None
        self.impl = impl

    def project(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-head queries, keys and values, each (B, H, len, d_k). Self-attention runs one matmul."""
        if key is None or (key is query and (value is None or value is query)):
            qkv = self._linear(query, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3D)
            q, k, v = qkv.unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4).unbind(0)
            return q, k, v
        return (self.project_query(query), *self.project_key_value(key, value))

    def _linear(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return (F.linear if self.resolved_impl() == "fused" else linear_reference)(x, weight, bias)

    def _in_proj(self, part: slice) -> tuple[Tensor, Tensor | None]:
        bias = None if self.in_proj_bias is None else self.in_proj_bias[part]
        return self.in_proj_weight[part], bias

    def project_query(self, query: Tensor) -> Tensor:
        """Q W^Q per head: (B, T, D) -> (B, H, T, d_k)."""
        return self.split_heads(self._linear(query, *self._in_proj(slice(0, self.embed_dim))))

    def project_key_value(self, key: Tensor, value: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """K W^K and V W^V per head, (B, H, S, d_k) each; a decoder projects its memory once with this."""
        D = self.embed_dim
        if value is None or value is key:
            k, v = self._linear(key, *self._in_proj(slice(D, 3 * D))).split(D, dim=-1)
        else:
            k, v = self._linear(key, *self._in_proj(slice(D, 2 * D))), self._linear(value, *self._in_proj(slice(2 * D, 3 * D)))
        return self.split_heads(k), self.split_heads(v)

    def split_heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # (B, L, D) -> (B, H, L, d_k)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, is_causal: bool = False,
               need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Attention of per-head q over k, v, heads merged and projected: (B, T, D) and weights (B, H, T, S)."""
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights or self.resolved_impl() == "reference":
            out, weights = scaled_dot_product_attention_reference(q, k, v, mask, is_causal, dropout_p)
        else:
            out = scaled_dot_product_attention_fused(q, k, v, mask, is_causal, dropout_p)
        out = out.transpose(1, 2).flatten(2)  # (B, H, T, d_k) -> (B, T, D)
        return self.out_proj(out), (weights if need_weights else None)

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,  # type: ignore[override]
                attn_mask: Tensor | None = None, key_mask: Tensor | None = None, is_causal: bool = False,
                need_weights: bool = False, past: KVCache | KVBuffer | None = None, memory_kv: KVCache | None = None,
                return_kv: bool = False
                ) -> tuple[Tensor, Tensor | None] | tuple[Tensor, Tensor | None, KVCache | KVBuffer]:
        """Returns (output, weights or None), plus the keys and values attended over if ``return_kv``.

        ``past``: self-attention keys and values of earlier positions (a KV cache), prepended to this
        call's; masks then span all S = past + T keys and ``is_causal`` lets every query see the cache.
        A ``KVBuffer`` past grows in place and is returned as the new keys and values.
        ``memory_kv``: cross-attention keys and values already projected (``project_key_value``), so a
        decoder projects its source once. ``need_weights`` computes on the reference path (the fused
        kernels never form the weights).
        """
        for name, x in (("query", query), ("key", key), ("value", value)):
            if x is not None and (x.dim() != 3 or x.shape[-1] != self.embed_dim):
                raise UserError(f"attention {name} must be (B, L, {self.embed_dim}), got {tuple(x.shape)}")
        source = query if key is None else key
        if source.shape[0] != query.shape[0] or (value is not None and value.shape[:2] != source.shape[:2]):
            raise UserError(f"attention query, key and value disagree on batch or length: {tuple(query.shape)}, "
                            f"{tuple(source.shape)}, {None if value is None else tuple(value.shape)}")
        if memory_kv is not None:
            q, (k, v) = self.project_query(query), memory_kv
        else:
            q, k, v = self.project(query, key, value)
            past_len = 0 if past is None else past.length if isinstance(past, KVBuffer) else past[0].shape[2]
            if self.rotary is not None:
                q, k = self.rotary(q, k, offset=past_len)
            if isinstance(past, KVBuffer):
                k, v = past.extend(k, v)
            elif past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        mask = attention_mask(query.shape[0], q.shape[2], k.shape[2], attn_mask, key_mask, device=query.device)
        out, weights = self.attend(q, k, v, mask, is_causal, need_weights)
        if not return_kv:
            return out, weights
        return out, weights, (past if isinstance(past, KVBuffer) else (k, v))


# ---------------------------------------------------------------------------------------------------
# Additive attention.


def _masked_softmax(energies: Tensor, mask: Tensor | None) -> Tensor:
    """softmax over the last dimension where ``mask`` is True; rows with no True entry give zeros."""
    if mask is None:
        return torch.softmax(energies, dim=-1)
    weights = torch.softmax(energies.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.where(mask.any(dim=-1, keepdim=True), weights, 0.0)


def additive_attention_reference(query: Tensor, keys: Tensor, values: Tensor, w_query: Tensor, w_key: Tensor,
                                 b_key: Tensor | None, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Bahdanau attention, one decoder step at a time as in the paper.

    Math: e_ij = vᵀ tanh(W s_i + U h_j + b)      (the alignment model a(s_i, h_j))
          α_ij = exp(e_ij) / Σ_k exp(e_ik)         (over the source positions k that mask allows)
          c_i = Σ_j α_ij h_j                        (h_j from ``values``; ``keys`` = ``values`` in the paper)
    Reference: Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly Learning to Align
        and Translate", arXiv:1409.0473, Sec. 3.1, eqs. (5)-(6), and Appendix A.1.2.
    Shapes: query (B, T, Q) — the decoder states s_i; keys (B, S, K); values (B, S, V); w_query (A, Q);
        w_key (A, K); b_key (A,); v (1, A); mask (B, S) or (B, T, S), True = may attend
        -> context (B, T, V), weights (B, T, S).
    Differs from paper: the paper scores s_{i-1}, the state before step i; which state to pass is the
        decoder's choice. A fully masked row gets zero weights.
    """
    contexts, all_weights = [], []
    for i in range(query.shape[1]):
        s_i = query[:, i]  # (B, Q)
        energies = torch.tanh(F.linear(s_i, w_query)[:, None, :] + F.linear(keys, w_key, b_key))  # (B, S, A)
        e_i = F.linear(energies, v).squeeze(-1)  # (B, S)
        row_mask = None if mask is None else (mask if mask.dim() == 2 else mask[:, i])
        alpha = _masked_softmax(e_i, row_mask)
        contexts.append(torch.einsum("bs,bsv->bv", alpha, values))
        all_weights.append(alpha)
    return torch.stack(contexts, dim=1), torch.stack(all_weights, dim=1)


class AdditiveAttention(ImplSwitch, nn.Module):
    """Additive (Bahdanau) attention: a one-hidden-layer network scores each query-key pair.

    Math: see ``additive_attention_reference``; W = ``query_proj.weight``, U = ``key_proj.weight``,
        b = ``key_proj.bias``, v = ``score.weight``.
    Reference: Bahdanau et al. 2015, arXiv:1409.0473, Appendix A.1.2.
    Shapes: query (B, T, query_size), keys (B, S, key_size), values (B, S, V) (default: keys)
        -> context (B, T, V), weights (B, T, S).
    The fused path scores every (i, j) pair at once and accepts keys projected once per source
    (``project_keys``), which a decoder reuses at every step; the reference recomputes U h_j per step.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int, impl: str = "auto"):
        super().__init__()
        if min(query_size, key_size, hidden_size) < 1:
            raise UserError("AdditiveAttention sizes must be >= 1")
        self.query_proj = nn.Linear(query_size, hidden_size, bias=False)
        self.key_proj = nn.Linear(key_size, hidden_size)
        self.score = nn.Linear(hidden_size, 1, bias=False)
        self.impl = impl

    def project_keys(self, keys: Tensor) -> Tensor:
        """U h_j + b for every source position: (B, S, key_size) -> (B, S, hidden_size)."""
        return self.key_proj(keys)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask: Tensor | None = None,
                projected_keys: Tensor | None = None) -> tuple[Tensor, Tensor]:
        values = keys if values is None else values
        B, T, S = query.shape[0], query.shape[1], keys.shape[1]
        if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) not in ((B, S), (B, T, S))):
            raise UserError(f"additive attention mask must be boolean (B, S) = {(B, S)} or (B, T, S) = {(B, T, S)}, "
                            f"got {mask.dtype} {tuple(mask.shape)}")
        if self.resolved_impl() == "reference":
            return additive_attention_reference(query, keys, values, self.query_proj.weight, self.key_proj.weight,
                                                self.key_proj.bias, self.score.weight, mask)
        projected = self.project_keys(keys) if projected_keys is None else projected_keys
        energies = torch.tanh(self.query_proj(query)[:, :, None, :] + projected[:, None, :, :])  # (B, T, S, A)
        e = self.score(energies).squeeze(-1)  # (B, T, S)
        weights = _masked_softmax(e, None if mask is None else (mask[:, None, :] if mask.dim() == 2 else mask))
        return torch.bmm(weights, values), weights
