"""Transformer encoder and decoder layers over torch.nn's parameter names, post-LN and pre-LN.

``TransformerEncoderLayer`` and ``TransformerDecoderLayer`` hold the same submodules under the same
names as ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` (``self_attn``,
``multihead_attn``, ``linear1``, ``linear2``, ``norm1``..``norm3``), so weights load both ways with
``strict=True``. Every sublayer carries the impl switch: under ``use_impl("reference")`` a layer runs
entirely on the reference functions (attention, LayerNorm, GELU, linear, dropout), and the tests
prove both paths equal torch.nn's layers.

Beyond torch.nn: batch-first always; boolean masks with True = may attend (layers/masks.py); a
``forward_with_state`` that takes and returns the self-attention keys and values (a KV cache, for
decoding one token at a time) and can return the attention weights (heatmaps); optional rotary
position embedding in self-attention.

Shapes: B batch, T target (or sequence) length, S source length, D d_model.
"""

from __future__ import annotations

from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import ACTIVATIONS, activation
from archzoo.layers.attention import KVBuffer, KVCache, MultiheadAttention
from archzoo.layers.dropout import Dropout
from archzoo.layers.linear import Linear
from archzoo.layers.norm import LayerNorm


def _check(d_model: int, nhead: int, dim_feedforward: int, dropout: float, activation_name: str) -> None:
    if d_model < 1 or nhead < 1 or d_model % nhead:
        raise UserError(f"model width d_model={d_model} is not divisible by nhead={nhead}; "
                        "choose a width that is a multiple of the number of heads")
    if dim_feedforward < 1:
        raise UserError(f"dim_feedforward must be >= 1, got {dim_feedforward}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be in [0, 1), got {dropout}")
    if activation_name not in ACTIVATIONS:
        raise UserError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation_name!r}")


class _FeedForward(nn.Module):
    """Shared by both layers: position-wise feed-forward, linear2(dropout(act(linear1(x))))
    (Vaswani et al. 2017, arXiv:1706.03762, Sec. 3.3, eq. (2))."""

    linear1: Linear
    linear2: Linear
    dropout: Dropout
    activation_name: str

    def _ff_block(self, x: Tensor) -> Tensor:
        act = activation(self.activation_name, self.linear1.resolved_impl())
        return self.linear2(self.dropout(act(self.linear1(x))))


class TransformerEncoderLayer(_FeedForward):
    """Self-attention and a feed-forward network, each in a residual branch with LayerNorm.

    Math (post-LN, the paper): x = LN1(x + Dropout(SelfAttn(x)));  x = LN2(x + Dropout(FFN(x)))
         (pre-LN):             x = x + Dropout(SelfAttn(LN1(x)));  x = x + Dropout(FFN(LN2(x)))
    Reference: Vaswani et al. 2017, arXiv:1706.03762, Sec. 3.1; pre-LN: Xiong et al. 2020, "On Layer
        Normalization in the Transformer Architecture", arXiv:2002.04745.
    Shapes: src (B, T, D) -> (B, T, D); ``attn_mask`` (T, T), (B, T, T) or (B, H, T, T); ``key_mask`` (B, T).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False, bias: bool = True,
                 rotary: bool = False):
        super().__init__()
        _check(d_model, nhead, dim_feedforward, dropout, activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, rotary=rotary)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation_name = activation

    def forward(self, src: Tensor, attn_mask: Tensor | None = None, key_mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        return self.forward_with_state(src, attn_mask, key_mask, is_causal)[0]

    def forward_with_state(self, x: Tensor, attn_mask: Tensor | None = None, key_mask: Tensor | None = None,
                           is_causal: bool = False, past: KVCache | KVBuffer | None = None, need_weights: bool = False
                           ) -> tuple[Tensor, KVCache | KVBuffer, Tensor | None]:
        """The layer, continuing ``past`` keys and values: returns (output, keys and values including
        this call's, attention weights (B, H, T, S) if ``need_weights``). With ``past``, masks span all
        S = past + T keys and ``is_causal`` lets position t see every cached key."""
        if x.dim() != 3 or x.shape[-1] != self.self_attn.embed_dim:
            raise UserError(f"a Transformer layer takes (B, T, {self.self_attn.embed_dim}), got {tuple(x.shape)}")
        attend = self._sa_block(self.norm1(x) if self.norm_first else x, attn_mask, key_mask, is_causal, past,
                                need_weights)
        out, kv, weights = attend
        if self.norm_first:
            x = x + out
            x = x + self.dropout2(self._ff_block(self.norm2(x)))
        else:
            x = self.norm1(x + out)
            x = self.norm2(x + self.dropout2(self._ff_block(x)))
        return x, kv, weights

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_mask: Tensor | None, is_causal: bool,
                  past: KVCache | KVBuffer | None, need_weights: bool
                  ) -> tuple[Tensor, KVCache | KVBuffer, Tensor | None]:
        out, weights, kv = self.self_attn(x, attn_mask=attn_mask, key_mask=key_mask, is_causal=is_causal,
                                          need_weights=need_weights, past=past, return_kv=True)
        return self.dropout1(out), kv, weights


class TransformerDecoderLayer(_FeedForward):
    """Masked self-attention, cross-attention over the encoder's output, and a feed-forward network.

    Math (post-LN): x = LN1(x + SelfAttn(x));  x = LN2(x + CrossAttn(x, memory));  x = LN3(x + FFN(x))
         (pre-LN):  x = x + SelfAttn(LN1(x));  x = x + CrossAttn(LN2(x), memory);  x = x + FFN(LN3(x))
         (each branch followed by dropout)
    Reference: Vaswani et al. 2017, arXiv:1706.03762, Sec. 3.1 (decoder); pre-LN: Xiong et al. 2020.
    Shapes: tgt (B, T, D), memory (B, S, D) -> (B, T, D); ``tgt_mask`` (T, T) or (B, T, T);
        ``memory_mask`` (T, S) or (B, T, S); ``tgt_key_mask`` (B, T); ``memory_key_mask`` (B, S).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, norm_first: bool = False, bias: bool = True):
        super().__init__()
        _check(d_model, nhead, dim_feedforward, dropout, activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation_name = activation

    def forward(self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
                tgt_key_mask: Tensor | None = None, memory_key_mask: Tensor | None = None,
                tgt_is_causal: bool = False) -> Tensor:
        return self.forward_with_state(tgt, memory, tgt_mask, memory_mask, tgt_key_mask, memory_key_mask,
                                       tgt_is_causal)[0]

    def forward_with_state(self, x: Tensor, memory: Tensor | KVCache, tgt_mask: Tensor | None = None,
                           memory_mask: Tensor | None = None, tgt_key_mask: Tensor | None = None,
                           memory_key_mask: Tensor | None = None, tgt_is_causal: bool = False,
                           past: KVCache | KVBuffer | None = None, need_weights: bool = False
                           ) -> tuple[Tensor, KVCache | KVBuffer, Tensor | None]:
        """The layer, continuing ``past`` self-attention keys and values. ``memory`` is the encoder
        output (B, S, D) or its cross-attention keys and values from ``project_memory`` (computed once
        per source when decoding step by step). Returns (output, self-attention keys and values,
        cross-attention weights (B, H, T, S) if ``need_weights``)."""
        D = self.self_attn.embed_dim
        if x.dim() != 3 or x.shape[-1] != D:
            raise UserError(f"a Transformer decoder layer takes (B, T, {D}), got {tuple(x.shape)}")
        memory_kv = self.project_memory(memory) if isinstance(memory, Tensor) else memory
        if self.norm_first:
            out, kv, _ = self._sa_block(self.norm1(x), tgt_mask, tgt_key_mask, tgt_is_causal, past)
            x = x + out
            out, weights = self._mha_block(self.norm2(x), memory_kv, memory_mask, memory_key_mask, need_weights)
            x = x + out
            x = x + self.dropout3(self._ff_block(self.norm3(x)))
        else:
            out, kv, _ = self._sa_block(x, tgt_mask, tgt_key_mask, tgt_is_causal, past)
            x = self.norm1(x + out)
            out, weights = self._mha_block(x, memory_kv, memory_mask, memory_key_mask, need_weights)
            x = self.norm2(x + out)
            x = self.norm3(x + self.dropout3(self._ff_block(x)))
        return x, kv, weights

    def project_memory(self, memory: Tensor) -> KVCache:
        """Cross-attention keys and values of the encoder output: (B, S, D) -> 2 x (B, H, S, d_k)."""
        if memory.dim() != 3 or memory.shape[-1] != self.multihead_attn.embed_dim:
            raise UserError(f"decoder memory must be (B, S, {self.multihead_attn.embed_dim}), got {tuple(memory.shape)}")
        return self.multihead_attn.project_key_value(memory)

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_mask: Tensor | None, is_causal: bool,
                  past: KVCache | KVBuffer | None) -> tuple[Tensor, KVCache | KVBuffer, Tensor | None]:
        out, _, kv = self.self_attn(x, attn_mask=attn_mask, key_mask=key_mask, is_causal=is_causal, past=past,
                                    return_kv=True)
        return self.dropout1(out), kv, None

    def _mha_block(self, x: Tensor, memory_kv: KVCache, attn_mask: Tensor | None, key_mask: Tensor | None,
                   need_weights: bool) -> tuple[Tensor, Tensor | None]:
        if memory_kv[0].shape[0] != x.shape[0]:
            raise UserError(f"decoder input has batch {x.shape[0]} but memory has batch {memory_kv[0].shape[0]}")
        out, weights = self.multihead_attn(x, attn_mask=attn_mask, key_mask=key_mask, need_weights=need_weights,
                                           memory_kv=memory_kv)
        return self.dropout2(out), weights
