"""LayerNorm and the pointwise activations: reference vs fused vs torch.nn, the formula's details, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archzoo.layers.norm as norm
from archzoo.errors import UserError
from archzoo.layers import use_impl
from archzoo.layers.activation import activation, gelu_reference, relu_reference
from archzoo.layers.norm import LayerNorm, layer_norm_reference

PATHS = ("reference", "fused")
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}


def run(module, x, probe):
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = module(x)
    (out * probe).sum().backward()
    return [out.detach(), x.grad] + [p.grad for _, p in module.named_parameters()]


# input shape, normalized_shape, elementwise_affine, bias, eps
CASES = {
    "plain": ((3, 5, 12), 12, True, True, 1e-5),
    "no-bias": ((3, 5, 12), (12,), True, False, 1e-5),
    "two-dims": ((2, 3, 4, 5), (4, 5), True, True, 1e-5),
    "three-dims-no-bias": ((2, 3, 4, 5), (3, 4, 5), True, False, 1e-3),
    "no-affine": ((4, 7), 7, False, True, 1e-5),
    "batch1-length1": ((1, 1, 3), 3, True, True, 1e-5),
    "big-eps": ((2, 6), 6, True, True, 0.5),
}


@DTYPES
@pytest.mark.parametrize("case", list(CASES))
def test_layer_norm_parity_reference_fused_torch(case, dtype):
    shape, normalized, affine, bias, eps = CASES[case]
    torch.manual_seed(0)
    theirs = nn.LayerNorm(normalized, eps=eps, elementwise_affine=affine, bias=bias, dtype=dtype)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()  # γ = 1, β = 0 at init would hide a swapped or missing affine
    ours = LayerNorm(normalized, eps=eps, elementwise_affine=affine, bias=bias, dtype=dtype)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x, probe = torch.randn(*shape, dtype=dtype) * 3 + 1, torch.randn(*shape, dtype=dtype)
    want = run(theirs, x, probe)
    for impl in PATHS:
        with use_impl(impl):
            got = run(ours, x, probe)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m, i=i, impl=impl: f"{case}/{impl}[{i}]: {m}")


def test_layer_norm_state_dict_and_init_are_torch_nn_s():
    ours, theirs = LayerNorm((3, 4), bias=False), nn.LayerNorm((3, 4), bias=False)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert torch.equal(ours.weight, torch.ones(3, 4)) and ours.bias is None
    assert torch.equal(LayerNorm(4).bias, torch.zeros(4))
    theirs.weight.data.normal_()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    back = nn.LayerNorm((3, 4), bias=False)
    back.load_state_dict(ours.state_dict(), strict=True)
    assert torch.equal(back.weight, theirs.weight)
    with pytest.raises(RuntimeError):
        LayerNorm((3, 4)).load_state_dict(theirs.state_dict(), strict=True)


def test_layer_norm_uses_biased_variance_with_eps_inside_the_root():
    """The pitfalls STYLE names: unbiased std, eps outside the square root."""
    x = torch.tensor([[1.0, 2.0, 4.0, 9.0]], dtype=torch.float64)
    eps = 0.25
    got = layer_norm_reference(x, (4,), eps=eps)
    centred = x - x.mean()
    torch.testing.assert_close(got, centred / (centred.square().mean() + eps).sqrt())
    assert (got - centred / (x.var(unbiased=True) + eps).sqrt()).abs().max() > 1e-3
    assert (got - centred / (x.var(unbiased=False).sqrt() + eps)).abs().max() > 1e-3


def test_layer_norm_normalises_each_row_to_zero_mean_unit_variance():
    x = torch.randn(6, 10, dtype=torch.float64) * 5 - 3
    y = layer_norm_reference(x, (10,), eps=0.0)
    torch.testing.assert_close(y.mean(-1), torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(6, dtype=torch.float64))


def test_layer_norm_half_precision_computes_statistics_in_float32():
    torch.manual_seed(1)
    x = (torch.randn(4, 32) * 100 + 1000).to(torch.bfloat16)
    w, b = torch.randn(32), torch.randn(32)
    got = layer_norm_reference(x, (32,), w.bfloat16(), b.bfloat16())
    assert got.dtype == torch.bfloat16
    want = F.layer_norm(x, (32,), w.bfloat16(), b.bfloat16())
    torch.testing.assert_close(got.float(), want.float(), atol=0.05, rtol=0.02)


def test_layer_norm_impl_switch_reaches_the_reference(monkeypatch):
    calls = []
    reference = norm.layer_norm_reference
    monkeypatch.setattr(norm, "layer_norm_reference", lambda *a, **k: calls.append(1) or reference(*a, **k))
    ln, x = LayerNorm(4), torch.randn(2, 4)
    ln(x)
    assert calls == []
    with use_impl("reference"):
        ln(x)
    ln.impl = "reference"
    ln(x)
    assert len(calls) == 2
    assert "impl='reference'" in repr(ln)


@pytest.mark.parametrize("shape", [(2, 5), (5,), (2, 4, 3)])
def test_layer_norm_wrong_input_shape_is_a_user_error(shape):
    ln = LayerNorm((4, 5))
    with pytest.raises(UserError, match=r"ending in \(4, 5\)") as info:
        ln(torch.randn(*shape))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------
# Activations


@DTYPES
@pytest.mark.parametrize("name, reference, fused", [("relu", relu_reference, F.relu), ("gelu", gelu_reference, F.gelu)])
def test_activation_reference_equals_torch_with_gradients(name, reference, fused, dtype):
    x = torch.cat([torch.linspace(-6, 6, 41, dtype=dtype), torch.tensor([0.0, -1e-3, 1e-3], dtype=dtype)])
    grads = []
    for fn in (reference, fused):
        leaf = x.clone().requires_grad_()
        out = fn(leaf)
        out.backward(torch.ones_like(out))
        grads.append((out.detach(), leaf.grad))
    torch.testing.assert_close(grads[0], grads[1], **TOL[dtype])
    assert activation(name, "reference") is reference and activation(name, "fused") is fused


def test_gelu_is_the_exact_erf_form_not_the_tanh_approximation():
    x = torch.linspace(-4, 4, 81, dtype=torch.float64)
    assert (gelu_reference(x) - F.gelu(x, approximate="tanh")).abs().max() > 1e-5
    assert gelu_reference(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(0.8413447460685429)


def test_unknown_activation_is_a_user_error_with_suggestions():
    with pytest.raises(UserError, match=r"unknown activation 'gelo' \(did you mean: gelu") as info:
        activation("gelo", "fused")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="known: gelu, relu"):
        activation("swishy-thing", "reference")
