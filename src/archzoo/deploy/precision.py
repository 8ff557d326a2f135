"""Faster inference: bf16 autocast, and dynamic int8 quantization of the Linear, LSTM and GRU layers.

Dynamic quantization stores each weight matrix as int8 with one scale per tensor and quantizes the
activations on the fly per batch, so it needs no calibration data; the matrix products run in int8
with int32 accumulation (PyTorch's fbgemm / onednn kernels, CPU only).
Reference: Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", arXiv:1712.05877 (affine quantization, Sec. 2).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from archzoo.errors import UserError, close_matches
from archzoo.layers.linear import Linear
from archzoo.layers.recurrent import GRU, LSTM

DTYPES = ("fp32", "bf16")
QUANTIZATIONS = ("int8",)


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}{close_matches(str(dtype), DTYPES)}; choose one of {', '.join(DTYPES)}")
    return dtype


def check_quantize(quantize: str | None) -> str | None:
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZATIONS)} (dynamic int8 for the "
                        "Linear, LSTM and GRU layers) or none")
    return quantize


def inference_autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast (matrix products in bf16, weights kept in fp32) or nothing for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=check_dtype(dtype) == "bf16")


class TorchRecurrent(nn.Module):
    """archzoo's LSTM or GRU as the equal ``torch.nn`` layer (same parameter names, so the state dict
    loads strictly), keeping archzoo's call ``(input, hx, lengths)``: the form ``quantize_dynamic`` converts.

    Shapes: as ``archzoo.layers.LSTM`` / ``GRU``: input (B, T, I) batch-first, lengths (B,).
    """

    def __init__(self, layer: LSTM | GRU):
        super().__init__()
        cls = nn.LSTM if isinstance(layer, LSTM) else nn.GRU
        self.rnn = cls(layer.input_size, layer.hidden_size, layer.num_layers, bias=layer.bias,
                       batch_first=layer.batch_first, dropout=layer.dropout, bidirectional=layer.bidirectional)
        self.rnn.load_state_dict(layer.state_dict(), strict=True)
        self.batch_first = layer.batch_first

    def forward(self, input: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None,
                lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        if lengths is None:
            return self.rnn(input, hx)
        steps = input.shape[1 if self.batch_first else 0]
        packed = pack_padded_sequence(input, torch.as_tensor(lengths).cpu(), batch_first=self.batch_first,
                                      enforce_sorted=False)
        output, state = self.rnn(packed, hx)  # torch.nn reorders the state of a packed batch itself
        output, _ = pad_packed_sequence(output, batch_first=self.batch_first, total_length=steps)
        return output, state


def _int8_linear_class() -> type[nn.Module]:
    """PyTorch's dynamic int8 Linear, answering ``resolved_impl`` like archzoo's Linear (a Transformer
    block asks its feed-forward layer which path to run; int8 has only the fused kernel)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class Int8Linear(DynamicLinear):
        def resolved_impl(self) -> str:
            return "fused"

    return Int8Linear


def _to_torch_layers(module: nn.Module) -> None:
    """Replace archzoo's Linear, LSTM and GRU inside ``module`` by their ``torch.nn`` equals, in place."""
    for name, child in module.named_children():
        if isinstance(child, Linear):
            plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            plain.load_state_dict(child.state_dict(), strict=True)
            setattr(module, name, plain)
        elif isinstance(child, LSTM | GRU):
            setattr(module, name, TorchRecurrent(child))
        else:
            _to_torch_layers(child)


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its Linear, LSTM and GRU layers quantized dynamically to int8 (CPU).

    Layers inside attention (its fused input projection) and convolutions stay fp32: dynamic
    quantization covers matrix products whose weights dominate, the readouts, feed-forward blocks and
    recurrent cells.
    """
    if any(t.device.type != "cpu" for t in model.parameters()):
        raise UserError("int8 quantization runs on the CPU; use --device cpu (or bf16 on a GPU)")
    quantized = copy.deepcopy(model).eval()
    _to_torch_layers(quantized)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao on every call
        from torch.ao.nn.quantized import dynamic
        from torch.ao.quantization import quantize_dynamic

        mapping = {nn.Linear: _int8_linear_class(), nn.LSTM: dynamic.LSTM, nn.GRU: dynamic.GRU}
        quantized = quantize_dynamic(quantized, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8, mapping=mapping)
    if not any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quantized.modules()):
        raise UserError(f"{type(model).__name__} has no Linear, LSTM or GRU layer to quantize to int8; use --dtype bf16")
    return quantized
