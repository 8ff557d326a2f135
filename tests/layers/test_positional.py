"""Positions: sinusoidal tables, learned embeddings and rotary embeddings — the formulas, reference vs fused, properties."""

from __future__ import annotations

import math

import pytest
import torch

from archzoo.errors import UserError
from archzoo.layers import use_impl
from archzoo.layers.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    rotary_fused,
    rotary_reference,
    sinusoidal_fused,
    sinusoidal_reference,
)

PATHS = ("reference", "fused")
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}


# ---------------------------------------------------------------------------------------------------
# Sinusoidal


def test_sinusoidal_position_zero_is_sin0_cos0():
    for table in (sinusoidal_reference(3, 8), sinusoidal_fused(3, 8)):
        assert torch.equal(table[0], torch.tensor([0.0, 1.0] * 4))


@pytest.mark.parametrize("pos, col", [(1, 0), (1, 1), (5, 2), (5, 3), (7, 6), (9, 9), (3, 11)])
def test_sinusoidal_entries_follow_the_paper(pos, col):
    D = 12
    angle = pos / 10000 ** ((col - col % 2) / D)
    want = math.sin(angle) if col % 2 == 0 else math.cos(angle)
    for table in (sinusoidal_reference(10, D), sinusoidal_fused(10, D)):
        assert table.shape == (10, D) and table.dtype == torch.float32
        assert table[pos, col].item() == pytest.approx(want, abs=1e-7)


@pytest.mark.parametrize("length, dim, base", [(1, 2, 10000.0), (7, 6, 10000.0), (13, 10, 100.0)])
def test_sinusoidal_reference_equals_fused(length, dim, base):
    torch.testing.assert_close(sinusoidal_fused(length, dim, base), sinusoidal_reference(length, dim, base),
                               atol=1e-7, rtol=0)
    # the fused table starts anywhere: positions offset .. offset + length - 1
    torch.testing.assert_close(sinusoidal_fused(4, dim, base, offset=3), sinusoidal_reference(7, dim, base)[3:],
                               atol=1e-7, rtol=0)


def test_sinusoidal_first_pair_has_wavelength_2pi_and_last_is_slow():
    table = sinusoidal_fused(64, 16).double()
    positions = torch.arange(64, dtype=torch.float64)
    torch.testing.assert_close(table[:, 0], positions.sin(), atol=1e-6, rtol=0)
    assert table[:, -1].min() > 0.99  # cos(pos / 10000^(14/16)) barely moves over 64 positions


@DTYPES
@pytest.mark.parametrize("offset", [0, 5])
def test_sinusoidal_module_adds_the_table_on_both_paths(offset, dtype):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, dtype=dtype, requires_grad=True)
    enc = SinusoidalPositionalEncoding(6)
    outs = []
    for impl in PATHS:
        with use_impl(impl):
            outs.append(enc(x, offset=offset))
    torch.testing.assert_close(outs[0], outs[1], **TOL[dtype])
    assert outs[0].dtype == dtype
    torch.testing.assert_close(outs[1] - x, sinusoidal_reference(offset + 4, 6)[offset:].to(dtype).expand(2, 4, 6))
    outs[1].sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert list(enc.parameters()) == []


@pytest.mark.parametrize("dim", [0, 1, 7])
def test_sinusoidal_needs_an_even_width(dim):
    with pytest.raises(UserError, match="even width"):
        SinusoidalPositionalEncoding(dim)


# ---------------------------------------------------------------------------------------------------
# Learned


def test_learned_positions_add_rows_from_offset_and_train_only_those():
    torch.manual_seed(1)
    emb = LearnedPositionalEmbedding(max_len=6, dim=4)
    assert emb.weight.shape == (6, 4) and 0.005 < emb.weight.std() < 0.05
    x = torch.randn(2, 3, 4)
    out = emb(x, offset=2)
    torch.testing.assert_close(out, x + emb.weight[2:5])
    out.sum().backward()
    assert torch.equal(emb.weight.grad[2:5], torch.full((3, 4), 2.0))
    assert torch.all(emb.weight.grad[[0, 1, 5]] == 0)
    emb(torch.randn(1, 6, 4))  # exactly max_len positions is fine
    assert emb(torch.randn(1, 6, 4, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("T, offset", [(7, 0), (1, 6), (3, 4)])
def test_learned_positions_past_max_len_is_a_user_error(T, offset):
    emb = LearnedPositionalEmbedding(max_len=6, dim=4)
    with pytest.raises(UserError, match="maximum context 6") as info:
        emb(torch.randn(1, T, 4), offset=offset)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------
# Rotary


def rotary_run(fn, x, probe, offset):
    x = x.detach().clone().requires_grad_()
    out = fn(x, offset)
    (out * probe).sum().backward()
    return out.detach(), x.grad


@DTYPES
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 1, 1, 2), (3, 7, 10)], ids=["BHTd", "ones", "Td-odd-pairs"])
@pytest.mark.parametrize("offset", [0, 9])
def test_rotary_reference_equals_fused(shape, offset, dtype):
    torch.manual_seed(2)
    x, probe = torch.randn(*shape, dtype=dtype), torch.randn(*shape, dtype=dtype)
    ref, fused = rotary_run(rotary_reference, x, probe, offset), rotary_run(rotary_fused, x, probe, offset)
    assert fused[0].dtype == dtype
    torch.testing.assert_close(fused, ref, **TOL[dtype])


def test_rotary_rotates_pairs_by_position_times_frequency():
    x = torch.zeros(1, 3, 4, dtype=torch.float64)
    x[..., 0::2] = 1.0  # each pair is (1, 0): the rotation's output is (cos, sin) of its angle
    out = rotary_reference(x)
    for m in range(3):
        for i, theta in enumerate((1.0, 10000 ** (-2 / 4))):
            assert out[0, m, 2 * i].item() == pytest.approx(math.cos(m * theta), abs=1e-12)
            assert out[0, m, 2 * i + 1].item() == pytest.approx(math.sin(m * theta), abs=1e-12)
    torch.testing.assert_close(out[0, 0], x[0, 0])  # position 0 is not rotated


@pytest.mark.parametrize("fn", [rotary_reference, rotary_fused])
def test_rotary_preserves_norms_and_scores_depend_on_relative_position_only(fn):
    torch.manual_seed(3)
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)

    def score(m, n):
        return (fn(q[None], offset=m)[0] @ fn(k[None], offset=n)[0]).item()

    for m, n in ((0, 0), (5, 2), (3, 7)):
        for shift in (1, 11, 100):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-10)
    assert abs(score(5, 2) - score(2, 5)) > 1e-3  # the direction of the offset matters
    assert abs(score(4, 0) - score(0, 0)) > 1e-3
    torch.testing.assert_close(fn(q[None], offset=17).norm(), q.norm())


@pytest.mark.parametrize("impl", PATHS)
def test_rotary_module_places_queries_at_the_last_key_positions(impl):
    torch.manual_seed(4)
    rot = RotaryEmbedding(4, impl=impl)
    q, k = torch.randn(2, 3, 6, 4, dtype=torch.float64), torch.randn(2, 3, 6, 4, dtype=torch.float64)
    q_all, k_all = rot(q, k)
    q_last, k_again = rot(q[:, :, 4:], k)  # two new queries after four cached positions
    torch.testing.assert_close(q_last, q_all[:, :, 4:], atol=1e-12, rtol=0)
    torch.testing.assert_close(k_again, k_all, atol=1e-12, rtol=0)
    q_off, k_off = rot(q[:, :, 4:], k[:, :, 4:], offset=4)  # the same via an explicit offset
    torch.testing.assert_close((q_off, k_off), (q_all[:, :, 4:], k_all[:, :, 4:]), atol=1e-12, rtol=0)
    torch.testing.assert_close(q_all, rotary_reference(q), atol=1e-12, rtol=0)


@pytest.mark.parametrize("head_dim", [0, 1, 5])
def test_rotary_needs_an_even_head_width(head_dim):
    with pytest.raises(UserError, match="even head width"):
        RotaryEmbedding(head_dim)


def test_rotary_table_built_while_generating_still_trains():
    """The cached cos/sin table may first be built under inference_mode (generation); training reuses it."""
    with torch.inference_mode():
        rotary_fused(torch.randn(1, 2, 3, 6), offset=517)  # a table of 1024 positions for d = 6
    x = torch.randn(1, 2, 3, 6, requires_grad=True)
    rotary_fused(x, offset=517).square().sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())  # a rotation: the gradient of |R x|^2 is 2x
