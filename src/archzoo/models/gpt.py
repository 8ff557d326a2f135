"""Decoder-only Transformer language model (GPT) with a KV cache for generation.

The model follows the language-model contract ``model(ids (B, T), state) -> (logits (B, T, V), state)``
(tasks/language_model.py, tasks/sampling.py). Its state is the KV cache: the tokens seen so far and,
for every layer, the keys and values of those tokens, so each generated token costs one position's
work instead of a pass over the whole context.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import activation
from archzoo.layers.attention import KVBuffer, KVCache
from archzoo.layers.dropout import Dropout
from archzoo.layers.impl import ImplSwitch
from archzoo.layers.linear import Linear
from archzoo.layers.norm import LayerNorm
from archzoo.layers.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, rotary_fused
from archzoo.layers.transformer import TransformerEncoderLayer
from archzoo.models.base import BATCH, ExportGraph
from archzoo.models.registry import register_model

POSITIONS = ("learned", "sinusoidal", "rotary")

# (tokens (B, L), kv_0, kv_1, ...): per layer the keys and values (B, H, L, d_k), as a (keys, values)
# tuple or, once generation continues a state, a KVBuffer that grows in place
Cache = tuple[Tensor | KVCache | KVBuffer, ...]


class GPT(nn.Module):
    """Token and position embeddings, a stack of pre-LN causal self-attention blocks, a final LayerNorm
    and a linear readout (optionally tied to the token embedding).

    Math: h_0 = E[x] + P;  h_l = Block_l(h_{l-1}) with Block(h) = h' + FFN(LN(h')), h' = h + CausalAttn(LN(h));
          logits = LN(h_L) Wᵀ  (W = E when tied)
    Reference: Radford, Narasimhan, Salimans & Sutskever 2018, "Improving Language Understanding by
        Generative Pre-Training" (GPT, no arXiv); Radford et al. 2019, "Language Models are Unsupervised
        Multitask Learners" (GPT-2: pre-LN, final LayerNorm, residual projections initialised with
        std 0.02/√(2L)); Karpathy's nanoGPT. Weight tying: Press & Wolf 2017, arXiv:1608.05859.
    Shapes: x (B, T) ids with T <= context -> logits (B, T, V); state: see ``Cache``.
    Differs from paper: context, width and depth are small for character-level modelling; rotary or
        sinusoidal positions can replace the learned ones. When a cache would pass ``context``
        positions, the model slides: it keeps the last min(context - T, context / 2) tokens and
        recomputes their keys and values (positions restart at 0), so generation can run past the
        context at the cost of one recomputation every context/2 tokens.
    """

    def __init__(self, vocab_size: int, context: int, d_model: int, num_layers: int, num_heads: int,
                 dim_feedforward: int, dropout: float, bias: bool, tie_weights: bool, positions: str):
        super().__init__()
        if vocab_size < 2 or context < 1 or num_layers < 1 or dim_feedforward < 1:
            raise UserError("gpt needs vocab_size >= 2 and context, num_layers, dim_feedforward >= 1")
        if d_model < 1 or num_heads < 1 or d_model % num_heads:
            raise UserError(f"gpt width d_model={d_model} is not divisible by num_heads={num_heads}; "
                            "choose a width that is a multiple of the number of heads")
        if positions not in POSITIONS:
            raise UserError(f"gpt positions must be one of {', '.join(POSITIONS)}, got {positions!r}")
        self.vocab_size, self.context = vocab_size, context
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position: nn.Module | None = {"learned": lambda: LearnedPositionalEmbedding(context, d_model),
                                           "sinusoidal": lambda: SinusoidalPositionalEncoding(d_model),
                                           "rotary": lambda: None}[positions]()
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, activation="gelu", norm_first=True,
                                    bias=bias, rotary=positions == "rotary")
            for _ in range(num_layers))
        self.norm = LayerNorm(d_model, bias=bias)
        self.head = Linear(d_model, vocab_size, bias=False)
        self._init_weights(num_layers)
        if tie_weights:
            self.head.weight = self.token_embedding.weight

    def _init_weights(self, num_layers: int) -> None:
        """GPT-2: N(0, 0.02) for matrices and embeddings, zero biases, and std 0.02/√(2L) for the two
        projections that write into the residual stream, so its variance does not grow with depth."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                residual = name.endswith(("out_proj.weight", "linear2.weight"))
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * num_layers) if residual else 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, x: Tensor, state: Cache | None = None) -> tuple[Tensor, Cache]:
        if x.dim() != 2:
            raise UserError(f"a language model takes ids of shape (B, T), got {tuple(x.shape)}")
        T = x.shape[1]
        if T > self.context:
            raise UserError(f"input of {T} tokens is longer than the model's context of {self.context}; feed at most "
                            f"{self.context} per call (training: data.context <= model.args.context)")
        past_len = 0 if state is None else state[0].shape[1]
        if past_len + T > self.context:  # slide: recompute a shorter prefix instead of growing past the context
            keep = min(self.context - T, self.context // 2)
            tokens = torch.cat([state[0][:, past_len - keep:], x], dim=1) if keep else x
            logits, new_state = self.forward(tokens)
            return logits[:, keep:], new_state
        h = self.token_embedding(x)
        if self.position is not None:
            h = self.position(h, offset=past_len)
        h = self.dropout(h)
        new_state: list[Tensor] = [x if state is None else torch.cat([state[0], x], dim=1)]
        for i, layer in enumerate(self.layers):
            past = None if state is None else state[1 + i]
            if isinstance(past, tuple) and not torch.is_grad_enabled():
                past = KVBuffer(*past)  # generation: grow the cache in place from here on
            h, kv, _ = layer.forward_with_state(h, is_causal=True, past=past)
            new_state.append(kv)
        return self.head(self.norm(h)), tuple(new_state)

    def example_inputs(self, batch_size: int = 2) -> tuple[Tensor]:
        return (torch.randint(0, self.vocab_size, (batch_size, min(8, self.context))),)

    def incremental_decoder(self) -> StaticCacheDecoder | None:
        """A token-by-token decoder with a preallocated KV cache computing exactly what ``forward`` with
        a state computes (same kernels, same order), or None where that fast path does not apply
        (training mode, or any layer set to the reference path): the sampler then uses ``forward``."""
        if self.training or any(m.resolved_impl() != "fused" for m in self.modules() if isinstance(m, ImplSwitch)):
            return None
        return StaticCacheDecoder(self)

    def export_graphs(self) -> list[ExportGraph]:
        """The forward pass: ids (B, T), T <= context -> logits (B, T, V) (no cache: an exported graph
        recomputes the window, as nanoGPT's generate does)."""
        return [ExportGraph(LogitsOnly(self), self.example_inputs(2), ["ids"], ["logits"],
                            {"ids": {0: BATCH, 1: ("time", 1, self.context)}})]


class StaticCacheDecoder:
    """Generation state of a ``GPT`` in eval mode: every layer's keys and values in one buffer of
    ``context`` positions allocated at the prompt, and a decode step that calls the kernels directly.

    At batch 1, ``forward`` with a state spends part of each step in Python around the kernels (module
    calls, argument checks, the impl switch, mask building, growing the cache). The step here issues
    the same ATen calls on the same shapes in the same order, so its logits are bitwise those of
    ``forward`` (tests/tasks/test_sampling.py checks it), with the Python between them cut to the
    operations themselves; the rotary rotation of queries and keys is one complex multiplication for
    both. Sliding past the context recomputes through ``forward``, as it does. (What remains per
    token is the matrix-vector products, bound by memory bandwidth, and about 150 small kernel calls:
    benchmarks/README.md, "Performance round 2".)
    Shapes: ``prefill`` ids (B, P) -> logits (B, V); ``step`` ids (B,) -> logits (B, V).
    """

    def __init__(self, model: GPT):
        self.model = model
        first = model.layers[0]
        self.num_heads, self.head_dim = first.self_attn.num_heads, first.self_attn.head_dim
        self.rotary = first.self_attn.rotary is not None
        self.act = activation(first.activation_name, "fused")
        self.keys = self.values = self.tokens = torch.empty(0)
        self.length = 0

    def prefill(self, ids: Tensor) -> Tensor:
        """Read ids (B, P) through ``forward`` and keep their keys and values; logits of the last position."""
        logits, state = self.model(ids)
        B, P = ids.shape
        if self.keys.shape[1:3] != (B, self.num_heads) or self.keys.dtype != state[1][0].dtype:
            shape = (len(self.model.layers), B, self.num_heads, self.model.context, self.head_dim)
            self.keys = state[1][0].new_empty(shape)
            self.values = torch.empty_like(self.keys)
            self.tokens = ids.new_empty(B, self.model.context)
        for i, (k, v) in enumerate(state[1:]):
            self.keys[i, :, :, :P] = k
            self.values[i, :, :, :P] = v
        self.tokens[:, :P] = ids
        self.length = P
        return logits[:, -1]

    def step(self, token: Tensor) -> Tensor:
        """Logits (B, V) after one more token per row (B,)."""
        model, pos = self.model, self.length
        if pos == model.context:  # slide as ``forward`` does: recompute the last context / 2 tokens
            keep = min(model.context - 1, model.context // 2)
            return self.prefill(torch.cat([self.tokens[:, pos - keep:], token[:, None]], dim=1))
        self.tokens[:, pos] = token
        h = F.embedding(token[:, None], model.token_embedding.weight)  # (B, 1, D)
        if model.position is not None:
            h = model.position(h, offset=pos)
        end, shape = pos + 1, (3, self.num_heads, self.head_dim)
        for i, layer in enumerate(model.layers):
            attn = layer.self_attn
            x = F.layer_norm(h, layer.norm1.normalized_shape, layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
            qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).unflatten(-1, shape).permute(2, 0, 3, 1, 4)
            qk = rotary_fused(qkv[:2], pos, attn.rotary.base) if self.rotary else qkv[:2]  # (2, B, H, 1, d_k)
            self.keys[i, :, :, pos:end] = qk[1]
            self.values[i, :, :, pos:end] = qkv[2]
            out = F.scaled_dot_product_attention(qk[0], self.keys[i, :, :, :end], self.values[i, :, :, :end])
            h = h + F.linear(out.transpose(1, 2).flatten(2), attn.out_proj.weight, attn.out_proj.bias)
            x = F.layer_norm(h, layer.norm2.normalized_shape, layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
            x = F.linear(self.act(F.linear(x, layer.linear1.weight, layer.linear1.bias)), layer.linear2.weight,
                         layer.linear2.bias)
            h = h + x
        norm = model.norm
        h = F.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        self.length = end
        return F.linear(h, model.head.weight)[:, -1]


class LogitsOnly(nn.Module):
    """A language model's logits without its state (for export)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor) -> Tensor:
        return self.model(ids)[0]


@register_model("gpt")
def gpt(vocab_size: int = 65, context: int = 256, d_model: int = 384, num_layers: int = 6, num_heads: int = 6,
        dim_feedforward: int = 0, dropout: float = 0.2, bias: bool = True, tie_weights: bool = False,
        positions: str = "learned") -> GPT:
    """nanoGPT's Shakespeare configuration by default; dim_feedforward 0 means 4 x d_model."""
    return GPT(vocab_size, context, d_model, num_layers, num_heads, dim_feedforward or 4 * d_model, dropout, bias,
               tie_weights, positions)
