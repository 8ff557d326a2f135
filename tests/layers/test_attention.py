"""Attention: scaled dot-product, multi-head and additive attention — reference vs fused vs torch, properties, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archzoo.layers.attention as attention
from archzoo.errors import UserError
from archzoo.layers import use_impl
from archzoo.layers.attention import (
    AdditiveAttention,
    KVBuffer,
    MultiheadAttention,
    additive_attention_reference,
    scaled_dot_product_attention_fused,
    scaled_dot_product_attention_reference,
)
from archzoo.layers.masks import causal_mask, padding_mask, to_torch_mask

PATHS = ("reference", "fused")
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def assert_close_all(got, want, tol, where):
    assert len(got) == len(want), where
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a is not None and b is not None, f"{where}[{i}]: missing"
        torch.testing.assert_close(a, b, **tol, msg=lambda m, i=i: f"{where}[{i}]: {m}")


def randomize_biases(module):
    """torch.nn initialises attention biases to zero, which would hide a bias applied in the wrong place."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "bias" in name:
                p.normal_()


# ---------------------------------------------------------------------------------------------------
# Scaled dot-product attention


def sdpa_run(fn, q, k, v, probe, **kwargs):
    q, k, v = leaves(q, k, v)
    out = fn(q, k, v, **kwargs)
    out = out[0] if isinstance(out, tuple) else out
    (out * probe).sum().backward()
    return out.detach(), [q.grad, k.grad, v.grad]


# mask kind, T, S
SDPA_CASES = {
    "none": ("none", 5, 7),
    "mask-TS": ("TS", 5, 7),
    "mask-B1TS": ("B1TS", 3, 4),
    "mask-BHTS": ("BHTS", 4, 4),
    "causal-square": ("causal", 5, 5),
    "causal-more-keys": ("causal", 3, 7),
    "causal-and-mask": ("causal+TS", 4, 6),
    "length1": ("none", 1, 1),
    "one-query-causal": ("causal", 1, 5),
}


@DTYPES
@pytest.mark.parametrize("case", list(SDPA_CASES))
def test_sdpa_reference_fused_and_torch_agree(case, dtype):
    kind, T, S = SDPA_CASES[case]
    torch.manual_seed(2)
    B, H, d, dv = 2, 3, 4, 5
    q, k, v = torch.randn(B, H, T, d, dtype=dtype), torch.randn(B, H, S, d, dtype=dtype), torch.randn(B, H, S, dv, dtype=dtype)
    probe = torch.randn(B, H, T, dv, dtype=dtype)
    shape = {"TS": (T, S), "causal+TS": (T, S), "B1TS": (B, 1, T, S), "BHTS": (B, H, T, S)}.get(kind)
    mask = None
    if shape is not None:
        mask = torch.rand(*shape) > 0.5
        mask[..., 0] = True  # no row without keys here; see test_sdpa_fully_masked_row_gives_zeros
    is_causal = kind.startswith("causal")
    torch_mask = mask
    if is_causal:
        torch_mask = causal_mask(T, S) if mask is None else mask & causal_mask(T, S)
    want = sdpa_run(F.scaled_dot_product_attention, q, k, v, probe, attn_mask=torch_mask)
    for fn in (scaled_dot_product_attention_reference, scaled_dot_product_attention_fused):
        got = sdpa_run(fn, q, k, v, probe, mask=mask, is_causal=is_causal)
        assert_close_all([got[0], *got[1]], [want[0], *want[1]], TOL[dtype], f"{fn.__name__}/{case}")


@DTYPES
def test_sdpa_custom_scale(dtype):
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 3, 4, dtype=dtype) for _ in range(3))
    want = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(scaled_dot_product_attention_reference(q, k, v, scale=0.3)[0], want, **TOL[dtype])
    torch.testing.assert_close(scaled_dot_product_attention_fused(q, k, v, scale=0.3), want, **TOL[dtype])
    assert (scaled_dot_product_attention_reference(q, k, v)[0] - want).abs().max() > 1e-3  # the scale is used


def test_sdpa_reference_weights_are_a_masked_softmax():
    torch.manual_seed(4)
    q, k, v = torch.randn(2, 3, 4, 5, dtype=torch.float64), torch.randn(2, 3, 6, 5, dtype=torch.float64), \
        torch.randn(2, 3, 6, 2, dtype=torch.float64)
    mask = torch.rand(2, 1, 4, 6) > 0.5
    mask[..., 2] = True
    out, weights = scaled_dot_product_attention_reference(q, k, v, mask)
    assert weights.shape == (2, 3, 4, 6)
    assert torch.all(weights.masked_select(~mask.expand_as(weights)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4, dtype=torch.float64))
    torch.testing.assert_close(out, weights @ v)
    scores = (q @ k.transpose(-1, -2)) / 5 ** 0.5
    ratio = weights[0, 0, 0, 2] / weights[0, 0, 0].max()  # softmax: ratios are exp of score differences
    allowed = scores[0, 0, 0].masked_fill(~mask[0, 0, 0], float("-inf"))
    torch.testing.assert_close(ratio, torch.exp(scores[0, 0, 0, 2] - allowed.max()))


@DTYPES
def test_sdpa_fully_masked_row_gives_zeros_and_finite_gradients(dtype):
    torch.manual_seed(5)
    q, k, v = torch.randn(2, 2, 4, 3, dtype=dtype), torch.randn(2, 2, 5, 3, dtype=dtype), torch.randn(2, 2, 5, 3, dtype=dtype)
    mask = torch.rand(2, 1, 4, 5) > 0.3
    mask[..., 0] = True
    mask[0, :, 1] = False  # query 1 of batch 0 sees no key
    mask[1, :, 3] = False
    probe = torch.randn(2, 2, 4, 3, dtype=dtype)
    ref = sdpa_run(scaled_dot_product_attention_reference, q, k, v, probe, mask=mask)
    fused = sdpa_run(scaled_dot_product_attention_fused, q, k, v, probe, mask=mask)
    assert_close_all([ref[0], *ref[1]], [fused[0], *fused[1]], TOL[dtype], "ref vs fused")
    for out, grads in (ref, fused):
        assert torch.all(out[0, :, 1] == 0) and torch.all(out[1, :, 3] == 0)
        assert all(torch.isfinite(g).all() for g in grads)
        assert torch.all(grads[0][0, :, 1] == 0)  # nothing flows back into a query that attended to nothing
    weights = scaled_dot_product_attention_reference(q, k, v, mask)[1]
    assert torch.all(weights[0, :, 1] == 0)
    keep = mask.any(-1).expand(2, 2, 4)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ref[0][keep], want[keep], **TOL[dtype])


def test_sdpa_fused_attends_in_float32_in_a_cpu_bf16_training_step():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scaled_dot_product_attention_fused(q, k, v, is_causal=True)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True).bfloat16()
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected)
    out.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16
    with torch.no_grad():  # inference keeps the bf16 kernel
        assert torch.equal(scaled_dot_product_attention_fused(q, k, v, is_causal=True),
                           F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_sdpa_fused_zeroes_rows_a_kernel_leaves_nan(monkeypatch):
    """Some CUDA kernels give NaN for a query with no key; the fused path must give zeros on every backend."""
    kernel = F.scaled_dot_product_attention

    def nan_kernel(q, k, v, attn_mask=None, **kwargs):
        out = kernel(q, k, v, attn_mask=attn_mask, **kwargs)
        return out.masked_fill(~attn_mask.any(-1, keepdim=True), float("nan"))

    monkeypatch.setattr(F, "scaled_dot_product_attention", nan_kernel)
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    mask = torch.ones(1, 1, 3, 5, dtype=torch.bool)
    mask[0, 0, 1] = False
    out = scaled_dot_product_attention_fused(q, k, v, mask)
    assert torch.all(out[:, :, 1] == 0) and torch.isfinite(out).all()
    torch.testing.assert_close(out, scaled_dot_product_attention_reference(q, k, v, mask)[0])


# ---------------------------------------------------------------------------------------------------
# Multi-head attention vs torch.nn.MultiheadAttention


def twin_of(ours):
    twin = nn.MultiheadAttention(ours.embed_dim, ours.num_heads, bias=ours.in_proj_bias is not None, batch_first=True,
                                 dtype=ours.in_proj_weight.dtype)
    twin.load_state_dict(ours.state_dict(), strict=True)
    return twin


def mha_run(module, query, key, value, probe, keep=None, **kwargs):
    """Forward, then backward of a fixed projection of the output (rows ``keep`` only); every gradient."""
    module.zero_grad(set_to_none=True)
    query, key, value = leaves(query, key, value)
    if isinstance(module, MultiheadAttention):
        out, weights = module(query, key, value, **kwargs)
    else:
        out, weights = module(query, key, value, **kwargs)
    loss = out * probe
    (loss if keep is None else loss[keep]).sum().backward()
    grads = [query.grad, key.grad, value.grad] + [p.grad for _, p in module.named_parameters()]
    return out.detach(), weights, grads


# B, T, S, D, H, bias, inputs (self | cross: key = value | kv: key != value), mask kind
MHA_CASES = {
    "odd-self-keys": (3, 5, 5, 12, 3, True, "self", "keys"),
    "odd-cross-keys": (2, 5, 7, 12, 3, True, "cross", "keys"),
    "kv-TS-no-bias": (2, 5, 7, 12, 3, False, "kv", "TS"),
    "self-causal": (2, 5, 5, 8, 2, True, "self", "causal"),
    "cross-causal-more-keys": (2, 3, 6, 8, 4, True, "cross", "causal"),
    "BTS-and-keys": (3, 4, 6, 6, 2, True, "kv", "BTS+keys"),
    "BHTS-no-bias": (2, 4, 4, 8, 2, False, "self", "BHTS"),
    "causal-and-keys": (2, 6, 6, 6, 3, True, "self", "causal+keys"),
    "batch1-length1": (1, 1, 1, 4, 1, True, "self", "none"),
    "batch1-one-query": (1, 1, 7, 12, 3, True, "cross", "keys"),
    "one-head-no-mask": (2, 3, 4, 5, 1, False, "kv", "none"),
}


def mha_inputs(case, dtype):
    B, T, S, D, H, bias, inputs, kind = MHA_CASES[case]
    query = torch.randn(B, T, D, dtype=dtype)
    key = query if inputs == "self" else torch.randn(B, S, D, dtype=dtype)
    value = key if inputs != "kv" else torch.randn(B, S, D, dtype=dtype)
    ours_kw, torch_kw = {}, {}
    attn = None
    if "TS" in kind:
        shape = {"TS": (T, S), "BTS": (B, T, S), "BHTS": (B, H, T, S)}[kind.split("+")[0]]
        attn = torch.rand(*shape) > 0.5
        attn[..., 0] = True  # every query keeps a key; fully masked rows have their own test
        ours_kw["attn_mask"] = attn
    if "keys" in kind:
        lengths = torch.randint(1, S + 1, (B,))
        lengths[0] = S
        ours_kw["key_mask"] = padding_mask(lengths, S)
        torch_kw["key_padding_mask"] = to_torch_mask(ours_kw["key_mask"])
    if "causal" in kind:
        ours_kw["is_causal"] = True
        attn = causal_mask(T, S)  # torch.nn's is_causal is only a hint: it needs the mask itself
    if attn is not None:  # torch.nn: (T, S) or (B·H, T, S), True = masked out
        per_head = attn.view(-1, attn.shape[-3] if attn.dim() == 4 else 1, T, S).expand(B, H, T, S).flatten(0, 1)
        torch_kw["attn_mask"] = to_torch_mask(attn if attn.dim() == 2 else per_head)
    return (query, key, value), ours_kw, torch_kw


@DTYPES
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_mha_parity_reference_fused_torch(case, dtype):
    torch.manual_seed(6)
    B, T, S, D, H, bias, _, _ = MHA_CASES[case]
    ours = MultiheadAttention(D, H, bias=bias, dtype=dtype)
    randomize_biases(ours)
    twin = twin_of(ours)
    inputs, ours_kw, torch_kw = mha_inputs(case, dtype)
    probe = torch.randn(B, T, D, dtype=dtype)
    want, _, want_grads = mha_run(twin, *inputs, probe, need_weights=False, **torch_kw)
    assert want.shape == (B, T, D)
    for impl in PATHS:
        with use_impl(impl):
            got, weights, grads = mha_run(ours, *inputs, probe, **ours_kw)
        assert weights is None
        assert_close_all([got, *grads], [want, *want_grads], TOL[dtype], f"{case}/{impl}")

    # per-head weights, as torch.nn gives them with average_attn_weights=False
    with torch.no_grad():
        want_out, want_w = twin(*inputs, need_weights=True, average_attn_weights=False, **torch_kw)
        ours.impl = "fused"  # need_weights computes on the reference path whatever impl says
        got_out, got_w = ours(*inputs, need_weights=True, **ours_kw)
    assert got_w.shape == (B, H, T, S)
    torch.testing.assert_close(got_out, want_out, **TOL[dtype])
    torch.testing.assert_close(got_w, want_w, **TOL[dtype])


@DTYPES
def test_mha_fully_masked_query_gives_zero_attention(dtype):
    """torch.nn gives NaN (or zeros, depending on its path) for a query with no key; ours attends to nothing:
    the heads give zeros, so the layer's output there is the output projection's bias."""
    torch.manual_seed(7)
    B, T, S, D, H = 2, 4, 5, 12, 3
    ours = MultiheadAttention(D, H, dtype=dtype)
    randomize_biases(ours)
    twin = twin_of(ours)
    query, key = torch.randn(B, T, D, dtype=dtype), torch.randn(B, S, D, dtype=dtype)
    attn = torch.rand(B, T, S) > 0.4
    attn[..., 0] = True
    attn[0, 2] = False
    attn[1, 0] = False
    keep = attn.any(-1)
    probe = torch.randn(B, T, D, dtype=dtype)
    torch_mask = to_torch_mask(attn.repeat_interleave(H, 0))
    want, want_w = twin(query, key, key, attn_mask=torch_mask, need_weights=True, average_attn_weights=False)
    assert torch.isnan(want[~keep]).all()  # the behaviour ours departs from
    runs = {}
    for impl in PATHS:
        ours.impl = impl
        runs[impl] = mha_run(ours, query, key, key, probe, attn_mask=attn)
        out, _, grads = runs[impl]
        torch.testing.assert_close(out[keep], want[keep].detach(), **TOL[dtype])
        torch.testing.assert_close(out[~keep], ours.out_proj.bias.detach().expand(2, D), **TOL[dtype])
        assert all(torch.isfinite(g).all() for g in grads)
    assert_close_all(runs["reference"][2], runs["fused"][2], TOL[dtype], "grads ref vs fused")
    _, weights = ours(query, key, attn_mask=attn, need_weights=True)
    assert torch.all(weights[0, :, 2] == 0) and torch.all(weights[1, :, 0] == 0)
    torch.testing.assert_close(weights.permute(0, 2, 1, 3)[keep], want_w.permute(0, 2, 1, 3)[keep].detach(), **TOL[dtype])


def test_mha_eval_mode_ignores_dropout_and_matches_torch():
    torch.manual_seed(8)
    ours = MultiheadAttention(8, 2, dropout=0.5).eval()
    twin = nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True).eval()
    twin.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        want = twin(x, x, x, need_weights=False)[0]
        for impl in PATHS:
            ours.impl = impl
            torch.testing.assert_close(ours(x)[0], want, atol=1e-5, rtol=1e-5)
        ours.train()
        assert (ours(x)[0] - want).abs().max() > 1e-3  # and dropout does act while training


def test_mha_state_dict_and_init_are_torch_nn_s():
    torch.manual_seed(9)
    ours = MultiheadAttention(12, 3)
    torch.manual_seed(9)
    theirs = nn.MultiheadAttention(12, 3, batch_first=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other = nn.MultiheadAttention(12, 3, batch_first=True)
    randomize_biases(other)
    ours.load_state_dict(other.state_dict(), strict=True)
    back = nn.MultiheadAttention(12, 3, batch_first=True)
    back.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 12)
    torch.testing.assert_close(ours(x)[0], back(x, x, x)[0], atol=1e-6, rtol=1e-6)
    assert list(MultiheadAttention(12, 3, bias=False).state_dict()) == ["in_proj_weight", "out_proj.weight"]


@pytest.mark.parametrize("impl", PATHS)
def test_mha_pieces_compose_to_forward(impl):
    """project / project_query / project_key_value / attend are the forward pass taken apart (a decoder's cache)."""
    torch.manual_seed(10)
    mha = MultiheadAttention(12, 3, impl=impl).double()
    randomize_biases(mha)
    x, mem, val = (torch.randn(2, n, 12, dtype=torch.float64) for n in (4, 6, 6))
    q, k, v = mha.project(x)
    assert q.shape == k.shape == v.shape == (2, 3, 4, 4)
    torch.testing.assert_close(q, mha.project_query(x))
    torch.testing.assert_close((k, v), mha.project_key_value(x))
    torch.testing.assert_close(mha.attend(q, k, v, is_causal=True)[0], mha(x, is_causal=True)[0])
    k2, v2 = mha.project_key_value(mem, val)
    torch.testing.assert_close(mha.project(x, mem, val), (q, k2, v2))
    torch.testing.assert_close(mha.attend(q, k2, v2)[0], mha(x, mem, val)[0])
    torch.testing.assert_close(mha.project_key_value(mem), mha.project_key_value(mem, mem))


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("rotary", [False, True], ids=["plain", "rotary"])
def test_mha_kv_cache_in_chunks_equals_one_causal_pass(impl, rotary):
    torch.manual_seed(17)
    mha = MultiheadAttention(12, 3, rotary=rotary, impl=impl).double()
    randomize_biases(mha)
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    keys = padding_mask(torch.tensor([6, 4]), 6)
    want, want_w, want_kv = mha(x, key_mask=keys, is_causal=True, need_weights=True, return_kv=True)
    past, outs, start = None, [], 0
    for size in (3, 1, 2):
        end = start + size
        out, w, past = mha(x[:, start:end], key_mask=keys[:, :end], is_causal=True, need_weights=True, past=past,
                           return_kv=True)
        torch.testing.assert_close(w, want_w[:, :, start:end, :end], atol=1e-12, rtol=1e-12)
        outs.append(out)
        start = end
    torch.testing.assert_close(torch.cat(outs, 1), want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(past, want_kv, atol=1e-12, rtol=1e-12)
    assert len(mha(x)) == 2  # the keys and values come back only when asked

    with torch.no_grad():  # the same chunks through a KVBuffer that grows in place
        _, _, buffer = mha(x[:, :3], key_mask=keys[:, :3], is_causal=True, return_kv=True)
        buffer, outs = KVBuffer(*buffer), [want[:, :3]]
        for start, end in ((3, 4), (4, 6)):
            out, _, returned = mha(x[:, start:end], key_mask=keys[:, :end], is_causal=True, past=buffer, return_kv=True)
            assert returned is buffer and buffer.length == end
            outs.append(out)
    torch.testing.assert_close(torch.cat(outs, 1), want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close((buffer.keys, buffer.values), want_kv, atol=1e-12, rtol=1e-12)


def test_kv_buffer_appends_like_concatenation_across_growth():
    keys, values = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    buffer = KVBuffer(keys[:, :, :2], values[:, :, :2])
    capacity = buffer._keys.shape[2]
    for t in range(2, 5):
        buffer.extend(keys[:, :, t:t + 1], values[:, :, t:t + 1])
    assert torch.equal(buffer.keys, keys) and torch.equal(buffer.values, values)
    big = torch.randn(2, 3, capacity + 3, 4)
    k, v = buffer.extend(big, -big)  # past the first capacity: the buffers grow and keep what they held
    assert buffer._keys.shape[2] > capacity and buffer.length == 5 + capacity + 3
    assert torch.equal(k, torch.cat([keys, big], 2)) and torch.equal(v, torch.cat([values, -big], 2))


def test_mha_rotary_makes_self_attention_see_order_and_leaves_the_state_dict_alone():
    torch.manual_seed(18)
    plain, rotary = MultiheadAttention(8, 2).double(), MultiheadAttention(8, 2, rotary=True).double()
    rotary.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(plain(x[:, perm])[0], plain(x)[0][:, perm], atol=1e-12, rtol=1e-12)
    assert (rotary(x[:, perm])[0] - rotary(x)[0][:, perm]).abs().max() > 1e-3
    q, k, v = rotary.project(x)
    q, k = rotary.rotary(q, k)
    torch.testing.assert_close(rotary(x, is_causal=True)[0], rotary.attend(q, k, v, is_causal=True)[0])


@pytest.mark.parametrize("impl", PATHS)
def test_mha_precomputed_memory_equals_passing_the_memory(impl):
    torch.manual_seed(19)
    mha = MultiheadAttention(12, 3, impl=impl).double()
    randomize_biases(mha)
    x, memory = torch.randn(2, 4, 12, dtype=torch.float64), torch.randn(2, 6, 12, dtype=torch.float64)
    keys = padding_mask(torch.tensor([6, 3]), 6)
    want = mha(x, memory, key_mask=keys, need_weights=True)
    got = mha(x, key_mask=keys, need_weights=True, memory_kv=mha.project_key_value(memory))
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    assert got[1].shape == (2, 3, 4, 6) and torch.all(got[1][1, :, :, 3:] == 0)


def test_mha_impl_switch_picks_the_path(monkeypatch):
    calls = []
    reference = attention.scaled_dot_product_attention_reference
    monkeypatch.setattr(attention, "scaled_dot_product_attention_reference",
                        lambda *a, **k: calls.append("reference") or reference(*a, **k))
    mha, x = MultiheadAttention(4, 2), torch.randn(1, 3, 4)
    mha(x)
    assert calls == []  # auto -> fused
    with use_impl("reference"):
        mha(x)
        assert calls == ["reference"]
        mha.impl = "fused"  # the instance's setting wins over the block
        mha(x)
        assert calls == ["reference"]
    mha.impl = "reference"
    mha(x)
    assert calls == ["reference"] * 2
    mha.impl = "fused"
    mha(x, need_weights=True)  # weights exist only on the reference path
    assert calls == ["reference"] * 3


# ---------------------------------------------------------------------------------------------------
# Properties


@pytest.mark.parametrize("impl", PATHS)
def test_self_attention_without_positions_is_permutation_equivariant(impl):
    torch.manual_seed(11)
    mha = MultiheadAttention(12, 3, impl=impl).double()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    keys = padding_mask(torch.tensor([7, 4]), 7)
    perm = torch.randperm(7)
    out = mha(x, key_mask=keys)[0]
    permuted = mha(x[:, perm], key_mask=keys[:, perm])[0]
    torch.testing.assert_close(permuted, out[:, perm], atol=1e-12, rtol=1e-12)
    assert (permuted - out).abs().max() > 1e-3  # the permutation did move rows


@pytest.mark.parametrize("impl", PATHS)
def test_padded_keys_masked_out_change_nothing(impl):
    torch.manual_seed(12)
    mha = MultiheadAttention(8, 2, impl=impl).double()
    query, key = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 5, 8, dtype=torch.float64)
    padded = torch.cat([key, 100 * torch.randn(2, 4, 8, dtype=torch.float64)], dim=1)
    want = mha(query, key)[0]
    got = mha(query, padded, key_mask=padding_mask(torch.tensor([5, 5]), 9))[0]
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    assert (mha(query, padded)[0] - want).abs().max() > 1e-3  # unmasked, the padding would matter


# ---------------------------------------------------------------------------------------------------
# Additive attention


def additive_run(module, query, keys, values, probe, **kwargs):
    module.zero_grad(set_to_none=True)
    query, keys, values = leaves(query, keys, values)
    context, weights = module(query, keys, values, **kwargs)
    ((context * probe).sum() + (weights * probe[..., :1]).sum()).backward()
    return [context.detach(), weights.detach(), query.grad, keys.grad, values.grad] + \
        [p.grad for _, p in module.named_parameters()]


@DTYPES
@pytest.mark.parametrize("mask_kind", ["none", "BS", "BTS"])
@pytest.mark.parametrize("B, T, S", [(3, 4, 5), (1, 1, 1), (2, 1, 6)], ids=["plain", "ones", "one-step"])
def test_additive_reference_equals_fused(B, T, S, mask_kind, dtype):
    torch.manual_seed(13)
    att = AdditiveAttention(query_size=3, key_size=5, hidden_size=7).to(dtype)
    query, keys, values = torch.randn(B, T, 3, dtype=dtype), torch.randn(B, S, 5, dtype=dtype), torch.randn(B, S, 2, dtype=dtype)
    mask = None
    if mask_kind != "none":
        mask = torch.rand(*((B, S) if mask_kind == "BS" else (B, T, S))) > 0.5
        mask[..., 0] = True
    probe = torch.randn(B, T, 2, dtype=dtype)
    runs = {}
    for impl in PATHS:
        att.impl = impl
        runs[impl] = additive_run(att, query, keys, values, probe, mask=mask)
    assert runs["fused"][0].shape == (B, T, 2) and runs["fused"][1].shape == (B, T, S)
    assert_close_all(runs["reference"], runs["fused"], TOL[dtype], f"additive/{mask_kind}")


def test_additive_weights_follow_the_formula_and_the_mask():
    torch.manual_seed(14)
    att = AdditiveAttention(3, 4, 6).double()
    query, keys = torch.randn(2, 3, 3, dtype=torch.float64), torch.randn(2, 5, 4, dtype=torch.float64)
    mask = torch.rand(2, 3, 5) > 0.5
    mask[..., 1] = True
    mask[1, 2] = False  # a query with no key
    for impl in PATHS:
        att.impl = impl
        context, weights = att(query, keys, mask=mask)
        assert torch.all(weights[~mask] == 0)
        torch.testing.assert_close(weights.sum(-1)[mask.any(-1)], torch.ones(5, dtype=torch.float64))
        assert torch.all(weights[1, 2] == 0) and torch.all(context[1, 2] == 0)
        torch.testing.assert_close(context, weights @ keys)  # values default to the keys
        # e_ij = vᵀ tanh(W s_i + U h_j + b) for one pair, written out
        W, U, b, v = att.query_proj.weight, att.key_proj.weight, att.key_proj.bias, att.score.weight[0]
        e = torch.stack([v @ torch.tanh(W @ query[0, 2] + U @ keys[0, j] + b) for j in range(5)])
        alpha = torch.softmax(e.masked_fill(~mask[0, 2], float("-inf")), -1)
        torch.testing.assert_close(weights[0, 2], alpha.detach())


def test_additive_projected_keys_equal_the_plain_call():
    torch.manual_seed(15)
    att = AdditiveAttention(3, 4, 6, impl="fused")
    query, keys, values = torch.randn(2, 3, 3), torch.randn(2, 5, 4), torch.randn(2, 5, 7)
    mask = padding_mask(torch.tensor([5, 2]), 5)
    want = att(query, keys, values, mask=mask)
    got = att(query, keys, values, mask=mask, projected_keys=att.project_keys(keys))
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    step = att(query[:, 1:2], keys, values, mask=mask, projected_keys=att.project_keys(keys))  # one decoder step
    torch.testing.assert_close(step[0], want[0][:, 1:2])


def test_additive_reference_function_matches_module_parameters():
    torch.manual_seed(16)
    att = AdditiveAttention(3, 4, 6, impl="fused").double()
    query, keys = torch.randn(2, 3, 3, dtype=torch.float64), torch.randn(2, 5, 4, dtype=torch.float64)
    got = additive_attention_reference(query, keys, keys, att.query_proj.weight, att.key_proj.weight, att.key_proj.bias,
                                       att.score.weight)
    torch.testing.assert_close(got, att(query, keys), atol=1e-12, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Bad input


def one_line_user_error(fn, match):
    with pytest.raises(UserError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("D, H", [(10, 3), (12, 0), (0, 1)])
def test_mha_width_not_divisible_by_heads(D, H):
    one_line_user_error(lambda: MultiheadAttention(D, H), "divisible")


def test_mha_bad_dropout_and_impl():
    one_line_user_error(lambda: MultiheadAttention(8, 2, dropout=1.0), "dropout")
    one_line_user_error(lambda: MultiheadAttention(8, 2, impl="fast"), "unknown impl 'fast'")
    mha = MultiheadAttention(8, 2)
    one_line_user_error(lambda: setattr(mha, "impl", "referense"), "did you mean: reference")


@pytest.mark.parametrize("call, match", [
    (lambda m, x: m(torch.randn(2, 3, 7)), "query must be"),
    (lambda m, x: m(torch.randn(3, 8)), "query must be"),
    (lambda m, x: m(x, torch.randn(2, 4, 6)), "key must be"),
    (lambda m, x: m(x, torch.randn(2, 4, 8), torch.randn(2, 4, 5)), "value must be"),
    (lambda m, x: m(x, torch.randn(3, 4, 8)), "disagree"),
    (lambda m, x: m(x, torch.randn(2, 4, 8), torch.randn(2, 5, 8)), "disagree"),
    (lambda m, x: m(x, attn_mask=torch.ones(3, 4, dtype=torch.bool)), "attn_mask has shape"),
    (lambda m, x: m(x, attn_mask=torch.ones(3, 3)), "boolean"),
    (lambda m, x: m(x, key_mask=torch.ones(2, 4, dtype=torch.bool)), "key_mask"),
    (lambda m, x: m(x, key_mask=torch.ones(2, 3, dtype=torch.long)), "key_mask"),
], ids=["width", "2d", "key-width", "value-width", "batch", "kv-length", "mask-shape", "mask-float", "keys-shape",
        "keys-long"])
def test_mha_bad_input(call, match):
    mha, x = MultiheadAttention(8, 2), torch.randn(2, 3, 8)
    one_line_user_error(lambda: call(mha, x), match)


def test_additive_bad_input():
    one_line_user_error(lambda: AdditiveAttention(0, 3, 4), ">= 1")
    att = AdditiveAttention(3, 4, 5)
    query, keys = torch.randn(2, 3, 3), torch.randn(2, 5, 4)
    one_line_user_error(lambda: att(query, keys, mask=torch.ones(2, 4, dtype=torch.bool)), "mask")
    one_line_user_error(lambda: att(query, keys, mask=torch.ones(2, 5)), "mask")
    one_line_user_error(lambda: att(query, keys, mask=torch.ones(2, 5, 3, dtype=torch.bool)), "mask")
