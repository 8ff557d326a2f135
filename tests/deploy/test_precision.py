"""bf16 and int8 inference: archzoo's recurrent layers in their torch.nn form compute the same function
(variable lengths included), int8 quantization converts the Linear/LSTM/GRU layers and stays close to
fp32, and bad precision options are one line."""

from __future__ import annotations

import pytest
import torch

from archzoo.deploy.precision import TorchRecurrent, check_dtype, check_quantize, quantize_int8
from archzoo.errors import UserError
from archzoo.layers import GRU, LSTM
from archzoo.models import create_model


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_the_torch_form_of_a_recurrent_layer_is_the_same_function(cls: type) -> None:
    layer = cls(6, 8, num_layers=2, bidirectional=True).eval()
    x, lengths = torch.randn(3, 5, 6), torch.tensor([5, 2, 4])
    with torch.no_grad():
        expected, expected_state = layer(x, lengths=lengths)
        got, state = TorchRecurrent(layer)(x, lengths=lengths)
        assert torch.allclose(got, expected, atol=1e-6)
        for a, b in zip(state if isinstance(state, tuple) else (state,),
                        expected_state if isinstance(expected_state, tuple) else (expected_state,), strict=True):
            assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(("name", "kwargs", "tolerance"), [
    ("simple_cnn", {}, 0.02),
    ("lstm_lm", {"hidden_size": 64, "embedding_dim": 16}, 0.05),
    ("bigru_classifier", {"vocab_size": 100, "embedding_dim": 16, "hidden_size": 16}, 0.05),
    ("gpt", {"context": 16, "d_model": 32, "num_layers": 1, "num_heads": 4}, 0.1),
])
def test_int8_converts_the_layers_and_stays_close(name: str, kwargs: dict, tolerance: float) -> None:
    model = create_model(name, **kwargs).eval()
    quantized = quantize_int8(model)
    kinds = {type(m).__module__ for m in quantized.modules()}
    assert any(k.startswith("torch.ao.nn.quantized") for k in kinds) or any(
        "Int8" in type(m).__name__ for m in quantized.modules())
    x = model.example_inputs(4)
    with torch.no_grad():
        a, b = model(*x), quantized(*x)
    a, b = (a[0], b[0]) if isinstance(a, tuple) else (a, b)
    assert (a - b).abs().max() <= tolerance * a.abs().max() + 1e-3
    assert next(model.parameters()).dtype == torch.float32  # the original model is untouched


def test_bad_precision_options_are_one_line() -> None:
    with pytest.raises(UserError, match="unknown dtype 'fp16' \\(did you mean: bf16, fp32"):
        check_dtype("fp16")
    with pytest.raises(UserError, match="unknown quantization 'int4'; choose int8"):
        check_quantize("int4")
    with pytest.raises(UserError, match="naive_last has no Linear, LSTM or GRU layer|NaiveLast has no Linear"):
        quantize_int8(create_model("naive_last", seq_len=4, horizon=2, num_channels=1))
