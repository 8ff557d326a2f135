"""Conv2d: reference (im2col) vs fused vs torch.nn parity over strides, padding, dilation, groups, dtypes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import Conv2d, ConvTranspose2d, conv2d_reference, conv_transpose2d_reference, use_impl

PATHS = ("reference", "fused")
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-4}, torch.float64: {"atol": 1e-11, "rtol": 1e-11}}


def forward_backward(module: nn.Module, x: torch.Tensor, probe: torch.Tensor) -> dict:
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = module(x)
    (out * probe).sum().backward()
    return {"out": out.detach(), "grad_input": x.grad,
            "grads": {n: p.grad for n, p in module.named_parameters()}}


def assert_same(a: dict, b: dict, tol: dict, where: str) -> None:
    torch.testing.assert_close(a["out"], b["out"], **tol, msg=lambda m: f"{where} output: {m}")
    torch.testing.assert_close(a["grad_input"], b["grad_input"], **tol, msg=lambda m: f"{where} grad input: {m}")
    assert a["grads"].keys() == b["grads"].keys()
    for name, g in a["grads"].items():
        assert g is not None, f"{where}: no gradient for {name}"
        torch.testing.assert_close(g, b["grads"][name], **tol, msg=lambda m, n=name: f"{where} grad {n}: {m}")


# batch, in, out, H, W, kernel, stride, padding, dilation, groups, bias
CASES = {
    "3x3-pad1": (2, 3, 4, 8, 8, 3, 1, 1, 1, 1, True),
    "batch1-odd-sizes-no-bias": (1, 5, 7, 9, 11, 3, 1, 0, 1, 1, False),
    "stride2-odd": (3, 2, 6, 13, 7, 3, 2, 1, 1, 1, True),
    "rect-kernel-stride-pad": (2, 3, 5, 10, 9, (3, 5), (2, 1), (1, 2), 1, 1, True),
    "dilation2": (2, 4, 4, 11, 12, 3, 1, 2, 2, 1, True),
    "dilation-rect-stride": (1, 3, 2, 15, 14, (2, 3), (3, 2), 1, (2, 3), 1, False),
    "groups2": (2, 4, 6, 7, 7, 3, 1, 1, 1, 2, True),
    "depthwise": (2, 6, 6, 9, 9, 5, 2, 2, 1, 6, True),
    "groups3-dilated-strided": (1, 9, 3, 16, 13, 3, 2, 3, 3, 3, True),
    "1x1": (4, 8, 3, 5, 5, 1, 1, 0, 1, 1, True),
    "kernel-covers-input": (2, 2, 3, 5, 5, 5, 1, 0, 1, 1, True),
    "same": (2, 3, 4, 7, 8, 4, 1, "same", 2, 1, True),
    "valid": (2, 3, 4, 7, 8, 3, 1, "valid", 1, 1, True),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES))
def test_parity_reference_fused_torch(case: str, dtype: torch.dtype) -> None:
    b, cin, cout, h, w, k, s, p, d, g, bias = CASES[case]
    ours = Conv2d(cin, cout, k, s, p, d, g, bias, dtype=dtype)
    twin = nn.Conv2d(cin, cout, k, s, p, d, g, bias, dtype=dtype)
    twin.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(b, cin, h, w, dtype=dtype)
    with torch.no_grad():
        shape = twin(x).shape
    probe = torch.randn(shape, dtype=dtype)
    expected = forward_backward(twin, x, probe)
    for impl in PATHS:
        ours.impl = impl
        assert_same(forward_backward(ours, x, probe), expected, TOL[dtype], f"{case}/{impl}")


def test_definition_on_a_hand_example() -> None:
    # (I*K)(i,j) = Σ_m Σ_n I(i+m, j+n) K(m,n) on a 3x3 image and a 2x2 kernel, no padding
    image = torch.arange(9.0).reshape(1, 1, 3, 3)
    kernel = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = torch.tensor([[[[0 + 2 + 9 + 16, 1 + 4 + 12 + 20], [3 + 8 + 18 + 28, 4 + 10 + 21 + 32]]]])
    assert torch.equal(conv2d_reference(image, kernel), expected)


def test_state_dict_and_init_match_torch_both_ways() -> None:
    torch.manual_seed(5)
    ours = Conv2d(3, 8, 3, padding=1, groups=1)
    torch.manual_seed(5)
    theirs = nn.Conv2d(3, 8, 3, padding=1)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # same seeded initialisation
    other = nn.Conv2d(3, 8, 3, padding=1)
    ours.load_state_dict(other.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 6, 6)
    with use_impl("reference"):
        torch.testing.assert_close(ours(x), other(x), atol=1e-5, rtol=1e-5)
    assert list(Conv2d(3, 8, 3, bias=False).state_dict()) == ["weight"]


def test_channels_last_and_bf16_autocast_paths_agree() -> None:
    conv = Conv2d(4, 8, 3, padding=1)
    x = torch.randn(2, 4, 9, 9).contiguous(memory_format=torch.channels_last)
    conv = conv.to(memory_format=torch.channels_last)
    outs = {}
    for impl in PATHS:
        conv.impl = impl
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs[impl] = conv(x)
    assert outs["fused"].dtype == outs["reference"].dtype == torch.bfloat16
    torch.testing.assert_close(outs["reference"].float(), outs["fused"].float(), atol=0.1, rtol=0.05)


def test_bad_configuration_and_input_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="groups=2 must divide"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(UserError, match="padding_mode"):
        Conv2d(3, 4, 3, padding_mode="reflect")
    conv = Conv2d(3, 4, 3)
    for bad in (torch.randn(2, 1, 8, 8), torch.randn(3, 8, 8)):
        with pytest.raises(UserError, match=r"expects input of shape \(B, 3, H, W\)"):
            conv(bad)


# ---------------------------------------------------------------------------- transposed convolution

# batch, in, out, H, W, kernel, stride, padding, output_padding, groups, dilation, bias
TRANSPOSED = {
    "dcgan-up2": (2, 8, 4, 7, 7, 4, 2, 1, 0, 1, 1, True),
    "dcgan-base-stride1": (2, 6, 6, 7, 7, 5, 1, 2, 0, 1, 1, False),
    "batch1-odd-no-bias": (1, 3, 5, 5, 9, 3, 1, 0, 0, 1, 1, False),
    "stride3-output-padding": (2, 4, 3, 5, 6, 3, 3, 1, 2, 1, 1, True),
    "rect-kernel-stride-pad": (2, 3, 4, 6, 5, (3, 5), (2, 1), (1, 2), (1, 0), 1, 1, True),
    "dilated": (2, 4, 4, 6, 6, 3, 2, 1, 1, 1, 2, True),
    "groups2": (2, 4, 6, 5, 5, 3, 2, 1, 1, 2, 1, True),
    "1x1": (3, 8, 2, 4, 4, 1, 1, 0, 0, 1, 1, True),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(TRANSPOSED))
def test_transposed_parity_reference_fused_torch(case: str, dtype: torch.dtype) -> None:
    b, cin, cout, h, w, k, s, p, op, g, d, bias = TRANSPOSED[case]
    ours = ConvTranspose2d(cin, cout, k, s, p, op, g, bias, d, dtype=dtype)
    twin = nn.ConvTranspose2d(cin, cout, k, s, p, op, g, bias, d, dtype=dtype)
    twin.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(b, cin, h, w, dtype=dtype)
    with torch.no_grad():
        shape = twin(x).shape
    probe = torch.randn(shape, dtype=dtype)
    expected = forward_backward(twin, x, probe)
    for impl in PATHS:
        ours.impl = impl
        assert_same(forward_backward(ours, x, probe), expected, TOL[dtype], f"{case}/{impl}")


def test_transposed_convolution_is_the_adjoint_of_convolution() -> None:
    """<conv(x), y> = <x, conv_transpose(y)> for the same kernel: the definition of the transpose."""
    torch.manual_seed(0)
    weight = torch.randn(5, 3, 4, 4, dtype=torch.float64)  # conv: 3 -> 5 channels; its transpose: 5 -> 3
    x, y = torch.randn(2, 3, 10, 10, dtype=torch.float64), torch.randn(2, 5, 5, 5, dtype=torch.float64)
    forward = conv2d_reference(x, weight, stride=2, padding=1)
    assert forward.shape == y.shape
    back = conv_transpose2d_reference(y, weight, stride=2, padding=1)
    torch.testing.assert_close((forward * y).sum(), (x * back).sum())


def test_transposed_hand_example_and_output_size() -> None:
    # stride 2, one pixel per input: each input value stamps the 2x2 kernel onto its own 2x2 block
    image = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    kernel = torch.tensor([[[[1.0, 10.0], [100.0, 1000.0]]]])
    expected = torch.tensor([[[[1, 10, 2, 20], [100, 1000, 200, 2000], [3, 30, 4, 40], [300, 3000, 400, 4000]]]])
    assert torch.equal(conv_transpose2d_reference(image, kernel, stride=2), expected.float())
    layer = ConvTranspose2d(1, 1, 3, stride=2, padding=1)
    for impl in PATHS:
        layer.impl = impl
        assert layer(torch.randn(1, 1, 7, 7), output_size=[14, 14]).shape == (1, 1, 14, 14)
        assert layer(torch.randn(1, 1, 7, 7)).shape == (1, 1, 13, 13)


def test_transposed_bad_configuration_and_input() -> None:
    with pytest.raises(UserError, match="groups=2 must divide"):
        ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(UserError, match=r"expects input of shape \(B, 3, H, W\)"):
        ConvTranspose2d(3, 4, 3)(torch.randn(2, 4, 5, 5))
