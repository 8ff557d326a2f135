"""Attention masks: the one boolean convention (True = may attend), its alignment, combination and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.masks import attention_mask, causal_mask, padding_mask, to_torch_mask


@pytest.mark.parametrize("T", [1, 2, 5])
def test_causal_mask_square_is_the_lower_triangle(T):
    assert causal_mask(T).dtype == torch.bool
    assert torch.equal(causal_mask(T), torch.ones(T, T, dtype=torch.bool).tril())
    assert torch.equal(causal_mask(T, T), causal_mask(T))


def test_causal_mask_with_more_keys_is_aligned_bottom_right():
    want = torch.tensor([[1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 0],
                         [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3, 5), want)
    # the T queries are the last T of the S positions: the mask is the bottom rows of the square one
    for T, S in ((1, 4), (2, 7), (4, 6)):
        assert torch.equal(causal_mask(T, S), causal_mask(S)[S - T:])
        assert causal_mask(T, S)[-1].all()


def test_causal_mask_top_left_alignment_would_differ():
    """The kernel's own is_causal aligns top-left; ours must not, or cached decoding breaks."""
    top_left = torch.ones(2, 4, dtype=torch.bool).tril()
    assert not torch.equal(causal_mask(2, 4), top_left)


def test_causal_mask_rejects_fewer_keys_than_queries():
    with pytest.raises(ValueError, match="key_len >= query_len"):
        causal_mask(4, 3)


def test_padding_mask_marks_the_first_length_positions():
    got = padding_mask(torch.tensor([3, 1, 0, 4]), 4)
    want = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert got.dtype == torch.bool and torch.equal(got, want)


def test_to_torch_mask_inverts_and_passes_none():
    mask = torch.tensor([[True, False], [False, False]])
    assert torch.equal(to_torch_mask(mask), ~mask)
    assert to_torch_mask(None) is None


def test_to_torch_mask_gives_sdpa_and_nn_the_same_answer():
    """SDPA takes True = may attend; nn.MultiheadAttention's converted mask blocks exactly the other keys."""
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 1, 3, 4), torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4)
    mask = torch.rand(3, 5) > 0.4
    mask[:, 0] = True
    additive = torch.zeros(3, 5).masked_fill(to_torch_mask(mask), float("-inf"))
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=additive))


def test_attention_mask_is_none_when_nothing_restricts():
    assert attention_mask(2, 3, 4) is None


B, H, T, S = 2, 3, 4, 6


def random_mask(*shape):
    return torch.rand(*shape) > 0.5


@pytest.mark.parametrize("shape", [(T, S), (B, T, S), (B, H, T, S), (B, 1, T, S)], ids=["TS", "BTS", "BHTS", "B1TS"])
@pytest.mark.parametrize("with_keys", [False, True], ids=["", "keys"])
@pytest.mark.parametrize("causal", [False, True], ids=["", "causal"])
def test_attention_mask_is_the_and_of_its_parts(shape, with_keys, causal):
    torch.manual_seed(1)
    attn = random_mask(*shape)
    keys = random_mask(B, S) if with_keys else None
    got = attention_mask(B, T, S, attn, keys, causal)
    assert got.dtype == torch.bool and got.dim() == 4
    want = attn.expand(B, H, T, S) if attn.dim() == 4 else attn.view(-1, 1, T, S).expand(B, H, T, S)
    if with_keys:
        want = want & keys[:, None, None, :]
    if causal:
        want = want & causal_mask(T, S)
    assert torch.equal(got.expand(B, H, T, S), want)


def test_attention_mask_from_keys_or_causality_alone():
    keys = padding_mask(torch.tensor([6, 2]), S)
    got = attention_mask(B, T, S, key_mask=keys)
    assert got.shape == (B, 1, 1, S) and torch.equal(got[:, 0, 0], keys)
    assert torch.equal(attention_mask(B, T, S, is_causal=True), causal_mask(T, S))


@pytest.mark.parametrize("attn, keys", [
    (torch.ones(T, S + 1, dtype=torch.bool), None),
    (torch.ones(T + 1, S, dtype=torch.bool), None),
    (torch.ones(B + 1, T, S, dtype=torch.bool), None),
    (torch.ones(B + 1, H, T, S, dtype=torch.bool), None),
    (torch.ones(S, dtype=torch.bool), None),
    (torch.ones(T, S), None),
    (torch.zeros(T, S, dtype=torch.long), None),
    (None, torch.ones(B, S + 1, dtype=torch.bool)),
    (None, torch.ones(S, dtype=torch.bool)),
    (None, torch.ones(B, S)),
], ids=["S+1", "T+1", "B+1", "BHTS-B+1", "1d", "float", "long", "keys-S+1", "keys-1d", "keys-float"])
def test_attention_mask_bad_shape_or_dtype_is_a_one_line_user_error(attn, keys):
    with pytest.raises(UserError) as info:
        attention_mask(B, T, S, attn, keys)
    assert "\n" not in str(info.value) and "mask" in str(info.value)
