"""Decoder-only Transformer language model (GPT) with a KV cache for generation.

The model follows the language-model contract ``model(ids (B, T), state) -> (logits (B, T, V), state)``
(tasks/language_model.py, tasks/sampling.py). Its state is the KV cache: the tokens seen so far and,
for every layer, the keys and values of those tokens, so each generated token costs one position's
work instead of a pass over the whole context.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from archzoo.errors import UserError
from archzoo.layers.activation import activation
from archzoo.layers.attention import KVBuffer, KVCache
from archzoo.layers.dropout import Dropout
from archzoo.layers.impl import ImplSwitch
from archzoo.layers.linear import Linear
from archzoo.layers.norm import LayerNorm
from archzoo.layers.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, rotary_table
from archzoo.layers.transformer import TransformerEncoderLayer
from archzoo.models.base import BATCH, ExportGraph
from archzoo.models.gpt_step import native_step
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
        """A token-by-token decoder with a preallocated KV cache computing ``forward``'s logits to float32
        rounding, or None where that fast path does not apply (training mode, any layer set to the reference
        path, or half-precision weights, which its in-place complex rotation does not take): the sampler then
        uses ``forward``."""
        if self.training or self.head.weight.dtype not in (torch.float32, torch.float64) or any(
                m.resolved_impl() != "fused" for m in self.modules() if isinstance(m, ImplSwitch)):
            return None
        return StaticCacheDecoder(self)

    def export_graphs(self) -> list[ExportGraph]:
        """The forward pass: ids (B, T), T <= context -> logits (B, T, V) (no cache: an exported graph
        recomputes the window, as nanoGPT's generate does)."""
        return [ExportGraph(LogitsOnly(self), self.example_inputs(2), ["ids"], ["logits"],
                            {"ids": {0: BATCH, 1: ("time", 1, self.context)}})]


class StaticCacheDecoder:
    """Generation state of a ``GPT`` in eval mode: every layer's keys and values in one buffer of
    ``context`` positions allocated at the prompt, and a decode step that reads each weight once.

    At batch 1 a step is a chain of matrix-vector products and small kernels, so its cost is the
    bytes of the weight matrices plus the dispatch of every kernel call. The weights are copied once,
    when the decoder is made, into the layout that a row vector times a matrix reads fastest (``x @ W``
    with W (in, out) contiguous), with the attention scale 1/√d_k folded into the query projection.
    Three paths compute the same step:

    - on CPU in float32 where a C compiler exists, one C call (models/gpt_step.c, ``native``) runs every
      layer, the final norm and the read-out: the Python path below spent about 600 of its 870 µs per
      token in the dispatch of its ~70 calls (benchmarks/README.md, "Performance round 2");
    - otherwise on CPU, the products through numpy's BLAS (OpenBLAS reads them 1.6x to 3.8x faster than
      MKL's gemm at M = 1 on this machine), the rotary rotation as one in-place complex multiplication of
      the query and key halves, one copy of the new key and value into the cache, and attention over the
      filled prefix as two batched products and a softmax (the fused SDPA kernel costs more than that
      for one query), all on views made once;
    - elsewhere (CUDA, float64 off CPU) the same calls through torch.

    The logits equal ``forward``'s to float32 rounding (summation order differs), and the sampler draws
    the same tokens (tests/tasks/test_sampling.py, tests/models/test_gpt_native.py).
    Sliding past the context recomputes through ``forward``, as it does.
    Shapes: ``prefill`` ids (B, P) -> logits (B, V); ``step`` ids (B,) -> logits (B, V).
    """

    def __init__(self, model: GPT, numpy_blas: bool | None = None, native: bool | None = None):
        # numpy_blas None: numpy's BLAS on CPU, torch's elsewhere; native None: the C step where it builds
        self.model, self.use_numpy, self.use_native = model, numpy_blas, native
        first = model.layers[0]
        self.activation_name = first.activation_name
        self.num_heads, self.head_dim = first.self_attn.num_heads, first.self_attn.head_dim
        self.rotary_base = first.self_attn.rotary.base if first.self_attn.rotary is not None else None
        self.act = activation(first.activation_name, "fused")
        self.weights = [_step_weights(layer, self.head_dim) for layer in model.layers]
        self.head = model.head.weight.detach().t().contiguous()  # (D, V)
        self.norm = _layer_norm_args(model.norm)
        self.batch = 0
        self.length = 0

    def _allocate(self, batch: int, like: Tensor) -> None:
        """Buffers for ``batch`` rows: the residual stream, each layer's projections and its cache
        (2, B, H, context, d_k), with the views a step reads and writes made once here."""
        model, H, d = self.model, self.num_heads, self.head_dim
        D, F_ = H * d, self.weights[0].fc1_weight.shape[1]
        self.batch = batch
        # on CPU numpy's BLAS (OpenBLAS) multiplies a row by a matrix at the cache's read bandwidth, about
        # 1.6x faster than torch's MKL gemm at M = 1 on this machine (benchmarks/README.md)
        self.numpy_blas = like.device.type == "cpu" if self.use_numpy is None else self.use_numpy
        affine = _numpy_affine if self.numpy_blas else partial(partial, _affine_torch)
        self.h = like.new_empty(batch, D)
        self.attn_out = like.new_empty(batch * H, 1, d)
        self.proj = like.new_empty(batch, D)
        self.ffn = like.new_empty(batch, F_)
        self.tokens = like.new_empty(batch, model.context, dtype=torch.long)
        self.rotations = None if self.rotary_base is None else rotary_table(  # as rotary_fused's, sized the same
            1 << (model.context - 1).bit_length(), d, self.rotary_base, like.device,
            torch.complex128 if like.dtype == torch.float64 else torch.complex64)
        self.cache, self.plan = [], []
        for w in self.weights:
            qkv, cache = like.new_empty(batch, 3, H, d), like.new_zeros(2, batch, H, model.context, d)
            self.cache.append(cache)
            # on the numpy path the rotated halves, the new keys and values and their slots as arrays
            as_array = (lambda t: t.numpy()) if self.numpy_blas else (lambda t: t)
            self.plan.append(_LayerPlan(
                w.norm1, w.norm2,
                affine(w.qkv_weight, w.qkv_bias, qkv.view(batch, -1), None),  # x -> qkv
                affine(w.out_weight, w.out_bias, self.proj, self.h),  # x -> h += x W_o + b_o
                affine(w.fc1_weight, w.fc1_bias, self.ffn, None),  # x -> ffn
                affine(w.fc2_weight, w.fc2_bias, self.proj, self.h),  # x -> h += x W_2 + b_2
                # queries and keys as d/2 complex pairs, rotated in place: (B, 2, H, d/2)
                as_array(torch.view_as_complex(qkv[:, :2].unflatten(-1, (d // 2, 2)))),
                qkv[:, 0],  # queries (B, H, d)
                as_array(qkv[:, 1:].transpose(0, 1)),  # new keys and values (2, B, H, d)
                as_array(cache.permute(3, 0, 1, 2, 4)),  # their slots (context, 2, B, H, d)
                cache[0].flatten(0, 1).mT,  # keys (B·H, d, context)
                cache[1].flatten(0, 1)))  # values (B·H, context, d)
        self.native = None if self.use_native is False else native_step(
            self.weights, self.cache, self.norm, self.head, self.rotations, self.h, F_, H, self.activation_name)
        if self.use_native and self.native is None:
            raise UserError("the C decode step (models/gpt_step.c) cannot run here: it needs float32 weights on CPU, "
                            "a ReLU or GELU model and a C compiler (apt-get install gcc); or leave native unset")

    def prefill(self, ids: Tensor) -> Tensor:
        """Read ids (B, P) through ``forward`` and keep their keys and values; logits of the last position."""
        logits, state = self.model(ids)
        B, P = ids.shape
        if self.batch != B or self.h.dtype != logits.dtype or self.h.device != logits.device:
            self._allocate(B, logits)
        for cache, (k, v) in zip(self.cache, state[1:], strict=True):
            cache[0, :, :, :P] = k
            cache[1, :, :, :P] = v
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
        h, end = self.h, pos + 1
        torch.index_select(model.token_embedding.weight, 0, token, out=h)
        if model.position is not None:
            h.copy_(model.position(h[:, None], offset=pos)[:, 0])
        if self.native is not None:  # every layer, the final norm and the read-out in one C call
            logits = h.new_empty(self.batch, self.head.shape[1])
            self.native(pos, logits)
            self.length = end
            return logits
        rotation = None if self.rotations is None else self.rotations.select(0, pos)
        if self.numpy_blas and rotation is not None:
            rotation = rotation.numpy()
        attn_out, attn_rows, d = self.attn_out, self.attn_out.view(self.batch, -1), self.head_dim
        for norm1, norm2, qkv_proj, out_proj, fc1, fc2, rotated, query, new_kv, slots, keys, values in self.plan:
            qkv_proj(torch.layer_norm(h, *norm1))
            if self.numpy_blas:  # two numpy calls on the same memory cost a third of two torch calls here
                if rotation is not None:
                    np.multiply(rotated, rotation, out=rotated)
                slots[pos] = new_kv
            else:
                if rotation is not None:
                    rotated.mul_(rotation)
                slots.select(0, pos).copy_(new_kv)
            # (B·H, 1, end); the reshape is a view at batch 1, a copy of the queries beyond
            if self.numpy_blas:  # numpy's matmul on the same memory: a quarter less dispatch than torch.bmm
                scores = np.matmul(query.reshape(-1, 1, d).numpy(), keys.numpy()[:, :, :end])
                np.matmul(torch.from_numpy(scores).softmax(-1).numpy(), values.numpy()[:, :end], out=attn_out.numpy())
            else:
                scores = torch.bmm(query.reshape(-1, 1, d), keys.narrow(2, 0, end)).softmax(-1)
                torch.bmm(scores, values.narrow(1, 0, end), out=attn_out)
            out_proj(attn_rows)
            fc1(torch.layer_norm(h, *norm2))
            fc2(self.act(self.ffn))
        self.length = end
        x = torch.layer_norm(h, *self.norm)
        if self.numpy_blas:
            return torch.from_numpy(np.dot(x.numpy(), self.head.numpy()))
        return torch.mm(x, self.head)


def _affine_torch(weight: Tensor, bias: Tensor, out: Tensor, residual: Tensor | None, x: Tensor) -> None:
    """out = x @ weight + bias in the preallocated ``out`` (B, out), then residual += out if given."""
    torch.addmm(bias, x, weight, out=out)
    if residual is not None:
        residual.add_(out)


def _affine_numpy(weight: Tensor, bias: Tensor, out: Tensor, residual: Tensor | None, x: Tensor) -> Tensor:
    """``_affine_torch`` on CPU through numpy arrays sharing the tensors' memory: its BLAS for the product,
    and its additions, which cost a fraction of a torch call's dispatch at these sizes. Every argument
    but ``x`` may come as an array already (``_numpy_affine`` binds them so)."""
    np.dot(x.numpy(), weight, out=out)
    np.add(out, bias, out=out)
    if residual is not None:
        np.add(residual, out, out=residual)


def _numpy_affine(weight: Tensor, bias: Tensor, out: Tensor, residual: Tensor | None) -> Callable[[Tensor], None]:
    """``_affine_numpy`` with its fixed arguments bound as numpy arrays, made once, not per call."""
    return partial(_affine_numpy, weight.numpy(), bias.numpy(), out.numpy(), None if residual is None else residual.numpy())


def _layer_norm_args(norm: nn.Module) -> tuple:
    """``torch.layer_norm``'s arguments after the input, read once (a module attribute costs a lookup)."""
    return norm.normalized_shape, norm.weight.detach(), None if norm.bias is None else norm.bias.detach(), norm.eps


class _LayerPlan(NamedTuple):
    """What one block's decode step reads and writes: layer-norm arguments, the four affine maps bound to
    their buffers, and views of the projection buffer and the cache."""
    norm1: tuple
    norm2: tuple
    qkv_proj: Callable[[Tensor], object]
    out_proj: Callable[[Tensor], object]
    fc1: Callable[[Tensor], object]
    fc2: Callable[[Tensor], object]
    rotated: Tensor | np.ndarray  # arrays on the numpy path (``numpy_blas``)
    query: Tensor
    new_kv: Tensor | np.ndarray
    slots: Tensor | np.ndarray
    keys: Tensor
    values: Tensor


class _StepWeights(NamedTuple):
    """One block's parameters as the decode step reads them: matrices (in, out), zero biases where the
    model has none, the attention scale folded into the query columns."""
    norm1: tuple
    norm2: tuple
    qkv_weight: Tensor
    qkv_bias: Tensor
    out_weight: Tensor
    out_bias: Tensor
    fc1_weight: Tensor
    fc1_bias: Tensor
    fc2_weight: Tensor
    fc2_bias: Tensor


def _step_weights(layer: TransformerEncoderLayer, head_dim: int) -> _StepWeights:
    attn = layer.self_attn

    def matrix_and_bias(weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
        weight = weight.detach()
        return weight.t().contiguous(), bias.detach() if bias is not None else weight.new_zeros(weight.shape[0])

    qkv_weight, qkv_bias = matrix_and_bias(attn.in_proj_weight, attn.in_proj_bias)
    D, scale = qkv_weight.shape[0], 1 / math.sqrt(head_dim)  # exact for head widths 4^k (1/8 at d_k = 64)
    qkv_weight[:, :D] *= scale
    qkv_bias = qkv_bias.clone()
    qkv_bias[:D] *= scale
    return _StepWeights(_layer_norm_args(layer.norm1), _layer_norm_args(layer.norm2), qkv_weight, qkv_bias,
                        *matrix_and_bias(attn.out_proj.weight, attn.out_proj.bias),
                        *matrix_and_bias(layer.linear1.weight, layer.linear1.bias),
                        *matrix_and_bias(layer.linear2.weight, layer.linear2.bias))


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
