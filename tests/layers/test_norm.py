"""Batch norm: reference vs fused vs torch.nn — outputs, gradients and running statistics over many steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import BatchNorm1d, BatchNorm2d, batch_norm_reference

PATHS = ("reference", "fused")
TOL = {torch.float32: {"atol": 2e-5, "rtol": 1e-4}, torch.float64: {"atol": 1e-11, "rtol": 1e-11}}
OURS = {1: BatchNorm1d, 2: BatchNorm2d}
TORCH = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}

# kind (1d/2d), input shape, momentum, affine, track_running_stats
CASES = {
    "2d": (2, (4, 3, 5, 6), 0.1, True, True),
    "2d-batch1-odd": (2, (1, 5, 3, 7), 0.1, True, True),
    "2d-cumulative-average": (2, (3, 2, 4, 4), None, True, True),
    "2d-no-affine-momentum-0.3": (2, (2, 4, 3, 3), 0.3, False, True),
    "2d-untracked": (2, (3, 3, 2, 5), 0.1, True, False),
    "1d-features": (1, (6, 5), 0.1, True, True),
    "1d-sequence": (1, (2, 4, 7), 0.2, True, True),
}


def step(module: nn.Module, x: torch.Tensor, probe: torch.Tensor) -> dict:
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = module(x)
    (out * probe).sum().backward()
    return {"out": out.detach(), "grad_input": x.grad, "grads": {n: p.grad for n, p in module.named_parameters()},
            "buffers": {n: b.clone() for n, b in module.named_buffers()}}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES))
def test_parity_over_train_and_eval_steps(case: str, dtype: torch.dtype) -> None:
    kind, shape, momentum, affine, track = CASES[case]
    twin = TORCH[kind](shape[1], momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype)
    if affine:  # not the identity initialisation, so gradients of γ and β are exercised
        with torch.no_grad():
            twin.weight.uniform_(0.5, 1.5)
            twin.bias.normal_()
    inputs = [torch.randn(shape, dtype=dtype) * 3 + 1 for _ in range(4)]
    probes = [torch.randn(shape, dtype=dtype) for _ in range(4)]
    expected = []
    for i, (x, probe) in enumerate(zip(inputs, probes, strict=True)):
        twin.train(i < 3)  # three training steps, then one in eval mode
        expected.append(step(twin, x, probe))
    for impl in PATHS:
        ours = OURS[kind](shape[1], momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype, impl=impl)
        # the state at the start of the run (buffers as torch initialises them, parameters as set above)
        init = TORCH[kind](shape[1], momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype)
        state = {**init.state_dict(), **{n: p for n, p in twin.named_parameters()}}
        ours.load_state_dict(state, strict=True)
        for i, (x, probe) in enumerate(zip(inputs, probes, strict=True)):
            ours.train(i < 3)
            got = step(ours, x, probe)
            want, where = expected[i], f"{case}/{impl}/step{i}"
            torch.testing.assert_close(got["out"], want["out"], **TOL[dtype], msg=lambda m, w=where: f"{w} out: {m}")
            torch.testing.assert_close(got["grad_input"], want["grad_input"], **TOL[dtype],
                                       msg=lambda m, w=where: f"{w} grad input: {m}")
            for n, g in want["grads"].items():
                torch.testing.assert_close(got["grads"][n], g, **TOL[dtype], msg=lambda m, w=where, n=n: f"{w} {n}: {m}")
            assert got["buffers"].keys() == want["buffers"].keys()
            for n, b in want["buffers"].items():
                torch.testing.assert_close(got["buffers"][n], b, **TOL[dtype], msg=lambda m, w=where, n=n: f"{w} {n}: {m}")


def test_running_variance_is_the_unbiased_batch_variance() -> None:
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    mean, var = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    batch_norm_reference(x, mean, var, training=True, momentum=1.0)
    torch.testing.assert_close(mean, x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(var, x.transpose(0, 1).reshape(2, -1).var(dim=1, unbiased=True))
    # the output is normalised with the biased variance
    y = batch_norm_reference(x, None, None, training=True)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(2, dtype=torch.float64),
                               atol=1e-4, rtol=0)


def test_state_dict_names_match_torch_both_ways() -> None:
    ours, theirs = BatchNorm2d(3), nn.BatchNorm2d(3)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    theirs(torch.randn(4, 3, 2, 2))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert int(ours.num_batches_tracked) == 1


def test_bf16_autocast_reference_keeps_input_dtype_and_fp32_stats() -> None:
    bn = BatchNorm2d(4, impl="reference")
    x = torch.randn(3, 4, 5, 5).to(torch.bfloat16)
    out = bn(x)
    assert out.dtype == torch.bfloat16 and bn.running_var.dtype == torch.float32
    ref = nn.BatchNorm2d(4)
    ref(x.float())
    torch.testing.assert_close(bn.running_mean, ref.running_mean, atol=1e-3, rtol=1e-2)


def test_one_value_per_channel_when_training_is_a_user_error() -> None:
    for impl in PATHS:
        with pytest.raises(UserError, match="more than 1 value per channel"):
            BatchNorm1d(3, impl=impl)(torch.randn(1, 3))
        BatchNorm1d(3, impl=impl).eval()(torch.randn(1, 3))  # fine in eval mode
    with pytest.raises(UserError, match=r"expects input of shape \(B, C, H, W\) with C=3"):
        BatchNorm2d(3)(torch.randn(2, 4, 5, 5))
