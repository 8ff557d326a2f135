"""Max, average and adaptive average pooling: reference vs fused vs torch.nn, values and input gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, avg_pool2d_reference

PATHS = ("reference", "fused")
TOL = {torch.float32: {"atol": 1e-6, "rtol": 1e-5}, torch.float64: {"atol": 1e-12, "rtol": 1e-12}}


def check(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> None:
    dtype = x.dtype
    x0 = x.detach().clone().requires_grad_()
    expected = theirs(x0)
    probe = torch.randn_like(expected)
    (expected * probe).sum().backward()
    for impl in PATHS:
        ours.impl = impl
        x1 = x.detach().clone().requires_grad_()
        out = ours(x1)
        (out * probe).sum().backward()
        torch.testing.assert_close(out, expected, **TOL[dtype], msg=lambda m, i=impl: f"{i} output: {m}")
        torch.testing.assert_close(x1.grad, x0.grad, **TOL[dtype], msg=lambda m, i=impl: f"{i} grad: {m}")


# kernel, stride, padding, dilation, ceil_mode, H, W, batch
MAX_CASES = {
    "2x2": (2, None, 0, 1, False, 8, 8, 2),
    "odd-size-floor": (2, 2, 0, 1, False, 7, 9, 1),
    "odd-size-ceil": (2, 2, 0, 1, True, 7, 9, 3),
    "overlapping-3s2": (3, 2, 0, 1, False, 13, 13, 2),
    "3s2-pad1-ceil": (3, 2, 1, 1, True, 14, 11, 2),
    "dilated": (3, 1, 1, 2, False, 10, 9, 2),
    "rect": ((2, 3), (1, 2), (1, 1), 1, False, 6, 11, 1),
    "ceil-last-window-dropped": (3, 3, 1, 1, True, 7, 7, 1),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(MAX_CASES))
def test_max_pool_parity(case: str, dtype: torch.dtype) -> None:
    k, s, p, d, ceil, h, w, b = MAX_CASES[case]
    check(MaxPool2d(k, s, p, d, ceil_mode=ceil), nn.MaxPool2d(k, s, p, d, ceil_mode=ceil),
          torch.randn(b, 3, h, w, dtype=dtype))


# kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, H, W
AVG_CASES = {
    "2x2": (2, None, 0, False, True, None, 8, 8),
    "odd-ceil": (2, 2, 0, True, True, None, 7, 9),
    "3s2-pad1-include": (3, 2, 1, False, True, None, 11, 10),
    "3s2-pad1-exclude": (3, 2, 1, False, False, None, 11, 10),
    "3s2-pad1-ceil-include": (3, 2, 1, True, True, None, 12, 9),
    "3s2-pad1-ceil-exclude": (3, 2, 1, True, False, None, 12, 9),
    "rect-pad": ((3, 2), (2, 1), (1, 1), True, False, None, 8, 7),
    "divisor": (3, 1, 1, False, True, 5, 6, 6),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(AVG_CASES))
def test_avg_pool_parity(case: str, dtype: torch.dtype) -> None:
    k, s, p, ceil, include, divisor, h, w = AVG_CASES[case]
    args = (k, s, p, ceil, include, divisor)
    check(AvgPool2d(*args), nn.AvgPool2d(*args), torch.randn(2, 3, h, w, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("size", [1, (1, 1), 3, (2, 5), (4, None), 7])
def test_adaptive_avg_pool_parity(size, dtype: torch.dtype) -> None:
    check(AdaptiveAvgPool2d(size), nn.AdaptiveAvgPool2d(size), torch.randn(2, 3, 7, 10, dtype=dtype))


def test_average_divisor_on_a_hand_example() -> None:
    # a 3x3 window with padding 1 over a 2x2 image of ones: each window sees 4 ones of 9 padded positions
    ones = torch.ones(1, 1, 2, 2)
    assert torch.allclose(avg_pool2d_reference(ones, 3, 1, 1), torch.full((1, 1, 2, 2), 4 / 9))
    assert torch.equal(avg_pool2d_reference(ones, 3, 1, 1, count_include_pad=False), torch.ones(1, 1, 2, 2))


def test_bad_pooling_is_a_user_error() -> None:
    with pytest.raises(UserError, match="at most half"):
        MaxPool2d(2, padding=2, impl="reference")(torch.randn(1, 1, 8, 8))
    with pytest.raises(UserError, match="does not fit"):
        MaxPool2d(5, impl="reference")(torch.randn(1, 1, 3, 3))
    with pytest.raises(UserError, match="return_indices"):
        MaxPool2d(2, return_indices=True)
