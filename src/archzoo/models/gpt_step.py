"""GPT's decode step as one C call (gpt_step.c), bound to a ``StaticCacheDecoder``'s buffers.

The structures below mirror gpt_step.c's ``Layer`` and ``Plan``: pointers into the decoder's weight
copies, cache and buffers, filled once per allocation; a step then passes the plan, the position and
the logits' memory. Every tensor the plan points into is kept alive by the decoder that owns it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from archzoo.native import native_library

SOURCE = Path(__file__).with_name("gpt_step.c")
FLOATS = ctypes.POINTER(ctypes.c_float)


class _Layer(ctypes.Structure):
    _fields_ = [(name, FLOATS) for name in ("norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias")] + [
        ("norm1_eps", ctypes.c_float), ("norm2_eps", ctypes.c_float)] + [
        (name, FLOATS) for name in ("qkv_weight", "qkv_bias", "out_weight", "out_bias", "fc1_weight", "fc1_bias",
                                    "fc2_weight", "fc2_bias", "cache")]


class _Plan(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("batch", "dim", "hidden", "heads", "head_dim", "context", "vocab",
                                                  "num_layers", "gelu")] + [
        ("rotations", FLOATS), ("norm_weight", FLOATS), ("norm_bias", FLOATS), ("norm_eps", ctypes.c_float),
        ("head", FLOATS), ("h", FLOATS), ("x", FLOATS), ("ffn", FLOATS), ("qkv", FLOATS), ("attn", FLOATS),
        ("scores", FLOATS), ("layers", ctypes.POINTER(_Layer))]


def _pointer(t: Tensor | None) -> FLOATS:
    """A float pointer to a contiguous float32 CPU tensor's memory (NULL for None)."""
    if t is None:
        return FLOATS()
    if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError("the C decode step takes contiguous float32 CPU tensors")
    return ctypes.cast(t.data_ptr(), FLOATS)


class NativeStep:
    """``step(pos, logits)``: every layer, the final norm and the read-out for the token embedded in ``h``
    (B, D) at position ``pos``, logits written into ``logits`` (B, V). ``weights`` are the decoder's
    ``_StepWeights`` (matrices (in, out), the attention scale folded in), ``caches`` its (2, B, H,
    context, d) buffers; the plan points into them and into scratch rows held here."""

    def __init__(self, library: ctypes.CDLL, weights: Sequence, caches: Sequence[Tensor], norm: tuple, head: Tensor,
                 rotations: Tensor | None, h: Tensor, hidden: int, num_heads: int, gelu: bool):
        B, D = h.shape
        context = caches[0].shape[3]
        self.scratch = [h.new_empty(B, D), h.new_empty(B, 3 * D), h.new_empty(B, D), h.new_empty(B, hidden),
                        h.new_empty(context), None if rotations is None else torch.view_as_real(rotations).contiguous()]
        x, qkv, attn, ffn, scores, rotation_pairs = self.scratch
        self.layers = (_Layer * len(weights))()
        for layer, w, cache in zip(self.layers, weights, caches, strict=True):
            (_, n1w, n1b, eps1), (_, n2w, n2b, eps2) = w.norm1, w.norm2
            layer.norm1_weight, layer.norm1_bias, layer.norm1_eps = _pointer(n1w), _pointer(n1b), eps1
            layer.norm2_weight, layer.norm2_bias, layer.norm2_eps = _pointer(n2w), _pointer(n2b), eps2
            for name in ("qkv_weight", "qkv_bias", "out_weight", "out_bias", "fc1_weight", "fc1_bias", "fc2_weight",
                         "fc2_bias"):
                setattr(layer, name, _pointer(getattr(w, name)))
            layer.cache = _pointer(cache)
        _, norm_weight, norm_bias, norm_eps = norm
        self.plan = _Plan(B, D, hidden, num_heads, D // num_heads, context, head.shape[1], len(weights), int(gelu),
                          _pointer(rotation_pairs), _pointer(norm_weight), _pointer(norm_bias), norm_eps, _pointer(head),
                          _pointer(h), _pointer(x), _pointer(ffn), _pointer(qkv), _pointer(attn), _pointer(scores),
                          self.layers)
        self.plan_pointer = ctypes.pointer(self.plan)
        self.function = library.gpt_step
        self.function.argtypes = [ctypes.POINTER(_Plan), ctypes.c_int, ctypes.c_void_p]
        self.function.restype = None

    def __call__(self, pos: int, logits: Tensor) -> None:
        self.function(self.plan_pointer, pos, logits.data_ptr())


def native_step(weights: Sequence, caches: Sequence[Tensor], norm: tuple, head: Tensor, rotations: Tensor | None,
                h: Tensor, hidden: int, num_heads: int, activation_name: str) -> NativeStep | None:
    """The C step over the decoder's buffers, or None where it does not apply here: not float32 on CPU, an
    activation the C file lacks, or no library (no compiler, ``ARCHZOO_NATIVE=0``)."""
    if h.dtype != torch.float32 or h.device.type != "cpu" or activation_name not in ("gelu", "relu"):
        return None
    library = native_library(SOURCE)
    if library is None:
        return None
    return NativeStep(library, weights, caches, norm, head, rotations, h, hidden, num_heads, activation_name == "gelu")
