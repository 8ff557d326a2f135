"""Linear and Dropout: reference vs fused vs torch.nn parity, initialisation, masks and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import Dropout, Linear, torch_nn_twin

PATHS = ("reference", "fused")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,bias", [((3, 7), True), ((1, 7), False), ((2, 4, 7), True), ((7,), True)])
def test_linear_parity(shape: tuple, bias: bool, dtype: torch.dtype) -> None:
    tol = {"atol": 1e-6, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    ours = Linear(7, 5, bias=bias, dtype=dtype)
    twin = nn.Linear(7, 5, bias=bias, dtype=dtype)
    twin.load_state_dict(ours.state_dict(), strict=True)
    x0 = torch.randn(shape, dtype=dtype, requires_grad=True)
    expected = twin(x0)
    probe = torch.randn_like(expected)
    (expected * probe).sum().backward()
    for impl in PATHS:
        ours.impl = impl
        ours.zero_grad(set_to_none=True)
        x = x0.detach().clone().requires_grad_()
        out = ours(x)
        (out * probe).sum().backward()
        torch.testing.assert_close(out, expected, **tol)
        torch.testing.assert_close(x.grad, x0.grad, **tol)
        for (name, p), q in zip(ours.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, **tol, msg=lambda m, n=name, i=impl: f"{i} {n}: {m}")


def test_linear_init_matches_torch() -> None:
    torch.manual_seed(3)
    ours = Linear(10, 4)
    torch.manual_seed(3)
    theirs = nn.Linear(10, 4)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True))
    with pytest.raises(UserError, match=r"expects input of shape \(\*, 10\)"):
        ours(torch.randn(2, 9))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_dropout_paths_drop_the_same_units_on_cpu(p: float) -> None:
    x = torch.randn(8, 50, requires_grad=True)
    outs = {}
    for impl in PATHS:
        torch.manual_seed(11)
        out = Dropout(p, impl=impl).train()(x)
        (grad,) = torch.autograd.grad(out.sum(), x)
        outs[impl] = (out.detach(), grad)
    torch.manual_seed(11)
    theirs = nn.Dropout(p).train()(x).detach()
    for impl in PATHS:
        torch.testing.assert_close(outs[impl][0], theirs, atol=0, rtol=0)
    torch.testing.assert_close(outs["reference"][1], outs["fused"][1], atol=0, rtol=0)
    for impl in PATHS:  # eval mode is the identity
        assert torch.equal(Dropout(p, impl=impl).eval()(x), x)


def test_dropout_keeps_the_mean() -> None:
    x = torch.ones(200_000)
    out = Dropout(0.25, impl="reference").train()(x)
    assert abs((out == 0).float().mean().item() - 0.25) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.01
    with pytest.raises(UserError, match="Dropout: p must be"):
        Dropout(1.5)


def test_torch_nn_twin_is_plain_torch_with_the_same_state() -> None:
    model = nn.Sequential(Linear(4, 3), Dropout(0.1), nn.ReLU(), Linear(3, 2, bias=False))
    twin = torch_nn_twin(model)
    assert [type(m) for m in twin] == [nn.Linear, nn.Dropout, nn.ReLU, nn.Linear]
    assert type(model[0]) is Linear  # the original is untouched
    for (k, a), (k2, b) in zip(model.state_dict().items(), twin.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(5, 4)
    torch.testing.assert_close(model.eval()(x), twin.eval()(x), atol=0, rtol=0)
