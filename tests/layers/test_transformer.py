"""Transformer layers: reference vs fused vs torch.nn parity, the KV cache, causality and other properties, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archzoo.errors import UserError
from archzoo.layers import ImplSwitch, set_impl, use_impl
from archzoo.layers.masks import causal_mask, padding_mask, to_torch_mask
from archzoo.layers.transformer import TransformerDecoderLayer, TransformerEncoderLayer

PATHS = ("reference", "fused")
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}
# norm_first, activation, bias: each of the four switches on and off at least once
CONFIGS = {"post-relu": (False, "relu", True), "post-gelu-no-bias": (False, "gelu", False),
           "pre-relu-no-bias": (True, "relu", False), "pre-gelu": (True, "gelu", True)}


def randomize(module):
    """torch.nn starts biases at 0 and LayerNorm gains at 1, which would hide a misplaced bias or gain."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "bias" in name or "norm" in name:
                p.normal_(0.0 if "bias" in name else 1.0, 0.5)


def make(kind, D, H, ff, config, dtype, **kwargs):
    """Ours (randomised, dropout 0) and torch.nn's layer loaded strictly from it."""
    norm_first, act, bias = CONFIGS[config]
    ours_cls, torch_cls = {"encoder": (TransformerEncoderLayer, nn.TransformerEncoderLayer),
                           "decoder": (TransformerDecoderLayer, nn.TransformerDecoderLayer)}[kind]
    ours = ours_cls(D, H, ff, dropout=0.0, activation=act, norm_first=norm_first, bias=bias, **kwargs).to(dtype)
    randomize(ours)
    twin = torch_cls(D, H, ff, dropout=0.0, activation=act, norm_first=norm_first, bias=bias, batch_first=True,
                     dtype=dtype)
    twin.load_state_dict(ours.state_dict(), strict=True)
    return ours, twin


def run(module, inputs, probe, keep=None, **kwargs):
    """Forward, backward of a fixed projection of the output (rows ``keep`` only); output and every gradient."""
    module.zero_grad(set_to_none=True)
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = module(*inputs, **kwargs)
    loss = out * probe
    (loss if keep is None else loss[keep]).sum().backward()
    return [out.detach()] + [t.grad for t in inputs] + [p.grad for _, p in module.named_parameters()]


def assert_same(got, want, tol, where):
    assert len(got) == len(want), where
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        assert a is not None and b is not None, f"{where}[{i}]: missing"
        torch.testing.assert_close(a, b, **tol, msg=lambda m, i=i: f"{where}[{i}]: {m}")


def masks(kind, B, T, S, H=None):
    """(ours: attn_mask, key_mask, is_causal), (torch.nn: attn_mask, key_padding_mask), True = masked there."""
    attn = keys = None
    if "TS" in kind:
        attn = torch.rand(T, S) > 0.5
        attn[:, 0] = True  # every query keeps a key; fully masked rows have their own tests
    if "keys" in kind:
        lengths = torch.randint(1, S + 1, (B,))
        lengths[-1] = S
        keys = padding_mask(lengths, S)
    causal = "causal" in kind
    torch_attn = causal_mask(T, S) if causal else attn  # torch.nn's is_causal is a hint; it needs the mask
    return (attn, keys, causal), (to_torch_mask(torch_attn), to_torch_mask(keys))


# ---------------------------------------------------------------------------------------------------
# Parity with torch.nn

# B, T, D, H, dim_feedforward, mask kind
ENCODER_CASES = {
    "odd-keys": (3, 5, 12, 3, 10, "keys"),
    "odd-causal": (2, 5, 12, 3, 10, "causal"),
    "causal-and-keys": (2, 6, 8, 2, 6, "causal+keys"),
    "attn-mask": (2, 4, 8, 4, 5, "TS"),
    "batch1-length1": (1, 1, 4, 2, 3, "none"),
}


@DTYPES
@pytest.mark.parametrize("case", list(ENCODER_CASES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_encoder_layer_parity_reference_fused_torch(config, case, dtype):
    torch.manual_seed(0)
    B, T, D, H, ff, kind = ENCODER_CASES[case]
    ours, twin = make("encoder", D, H, ff, config, dtype)
    (attn, keys, causal), (t_attn, t_keys) = masks(kind, B, T, T)
    x, probe = torch.randn(B, T, D, dtype=dtype), torch.randn(B, T, D, dtype=dtype)
    want = run(twin, [x], probe, src_mask=t_attn, src_key_padding_mask=t_keys, is_causal=causal)
    for impl in PATHS:
        with use_impl(impl):
            got = run(ours, [x], probe, attn_mask=attn, key_mask=keys, is_causal=causal)
        assert_same(got, want, TOL[dtype], f"{config}/{case}/{impl}")


# B, T, S, D, H, dim_feedforward, target mask kind, memory mask kind
DECODER_CASES = {
    "odd-causal-memory-keys": (3, 5, 7, 12, 3, 10, "causal", "keys"),
    "target-keys-memory-mask": (2, 4, 6, 8, 2, 6, "keys", "TS"),
    "causal-and-keys": (2, 5, 3, 8, 4, 5, "causal+keys", "none"),
    "batch1-length1": (1, 1, 1, 4, 2, 3, "none", "none"),
}


@DTYPES
@pytest.mark.parametrize("case", list(DECODER_CASES))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_decoder_layer_parity_reference_fused_torch(config, case, dtype):
    torch.manual_seed(1)
    B, T, S, D, H, ff, tgt_kind, mem_kind = DECODER_CASES[case]
    ours, twin = make("decoder", D, H, ff, config, dtype)
    (tgt_attn, tgt_keys, causal), (t_tgt_attn, t_tgt_keys) = masks(tgt_kind, B, T, T)
    (mem_attn, mem_keys, _), (t_mem_attn, t_mem_keys) = masks(mem_kind, B, T, S)
    x, memory = torch.randn(B, T, D, dtype=dtype), torch.randn(B, S, D, dtype=dtype)
    probe = torch.randn(B, T, D, dtype=dtype)
    want = run(twin, [x, memory], probe, tgt_mask=t_tgt_attn, memory_mask=t_mem_attn, tgt_key_padding_mask=t_tgt_keys,
               memory_key_padding_mask=t_mem_keys, tgt_is_causal=causal)
    for impl in PATHS:
        ours.impl = "auto"
        set_impl(ours, impl)
        got = run(ours, [x, memory], probe, tgt_mask=tgt_attn, memory_mask=mem_attn, tgt_key_mask=tgt_keys,
                  memory_key_mask=mem_keys, tgt_is_causal=causal)
        assert_same(got, want, TOL[dtype], f"{config}/{case}/{impl}")


def feed_forward(twin, h):
    return twin.linear2(twin.activation(twin.linear1(h)))  # torch.nn keeps F.relu or F.gelu here


def bias_of(attn, D, dtype):
    return torch.zeros(D, dtype=dtype) if attn.out_proj.bias is None else attn.out_proj.bias


@DTYPES
@pytest.mark.parametrize("config", list(CONFIGS))
def test_encoder_fully_masked_query_attends_to_nothing(config, dtype):
    """torch.nn gives NaN for a query with no key to attend to; ours gives zero attention there, so that
    row is the layer with the attention branch replaced by the output projection's bias."""
    torch.manual_seed(2)
    B, T, D, H = 2, 5, 12, 3
    ours, twin = make("encoder", D, H, 7, config, dtype)
    attn = torch.rand(T, T) > 0.5
    attn[:, 0] = True
    attn[2] = False
    x, probe = torch.randn(B, T, D, dtype=dtype), torch.randn(B, T, D, dtype=dtype)
    keep = attn.any(-1).expand(B, T)
    with torch.no_grad():
        want = twin(x, src_mask=to_torch_mask(attn))  # NaN or not at row 2, depending on torch.nn's path
        h = x[:, 2] + bias_of(twin.self_attn, D, dtype)
        if twin.norm_first:
            row = h + feed_forward(twin, twin.norm2(h))
        else:
            h = twin.norm1(h)
            row = twin.norm2(h + feed_forward(twin, h))
    runs = {}
    for impl in PATHS:
        set_impl(ours, impl)
        runs[impl] = got = run(ours, [x], probe, attn_mask=attn)
        torch.testing.assert_close(got[0][keep], want[keep], **TOL[dtype])
        torch.testing.assert_close(got[0][:, 2], row, **TOL[dtype])
        assert all(torch.isfinite(g).all() for g in got)
    assert_same(runs["reference"], runs["fused"], TOL[dtype], "reference vs fused")


@DTYPES
@pytest.mark.parametrize("config", list(CONFIGS))
def test_decoder_memory_fully_masked_for_one_example(config, dtype):
    """Example 1 has no real memory: its cross-attention gives the bias alone; example 0 matches torch.nn."""
    torch.manual_seed(3)
    B, T, S, D, H = 2, 3, 4, 8, 2
    ours, twin = make("decoder", D, H, 6, config, dtype)
    mem_keys = torch.tensor([[True, True, False, True], [False] * 4])
    x, memory = torch.randn(B, T, D, dtype=dtype), torch.randn(B, S, D, dtype=dtype)
    probe = torch.randn(B, T, D, dtype=dtype)
    causal = causal_mask(T)
    with torch.no_grad():
        want = twin(x, memory, tgt_mask=to_torch_mask(causal), memory_key_padding_mask=to_torch_mask(mem_keys))
        cross_bias = bias_of(twin.multihead_attn, D, dtype)
        h = x[1:]
        if twin.norm_first:
            h1 = twin.norm1(h)
            h = h + twin.self_attn(h1, h1, h1, attn_mask=to_torch_mask(causal))[0] + cross_bias
            row = h + feed_forward(twin, twin.norm3(h))
        else:
            h = twin.norm1(h + twin.self_attn(h, h, h, attn_mask=to_torch_mask(causal))[0])
            h = twin.norm2(h + cross_bias)
            row = twin.norm3(h + feed_forward(twin, h))
    runs = {}
    for impl in PATHS:
        with use_impl(impl):
            runs[impl] = got = run(ours, [x, memory], probe, memory_key_mask=mem_keys, tgt_is_causal=True)
        torch.testing.assert_close(got[0][:1], want[:1], **TOL[dtype])
        torch.testing.assert_close(got[0][1:], row, **TOL[dtype])
        assert all(torch.isfinite(g).all() for g in got)
    assert_same(runs["reference"], runs["fused"], TOL[dtype], "reference vs fused")


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_state_dict_and_init_are_torch_nn_s(kind):
    ours_cls, torch_cls = {"encoder": (TransformerEncoderLayer, nn.TransformerEncoderLayer),
                           "decoder": (TransformerDecoderLayer, nn.TransformerDecoderLayer)}[kind]
    torch.manual_seed(4)
    ours = ours_cls(12, 3, 10)
    torch.manual_seed(4)
    theirs = torch_cls(12, 3, 10, batch_first=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert a.shape == b.shape and torch.equal(a, b), name
    randomize(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    back = torch_cls(12, 3, 10, batch_first=True)
    back.load_state_dict(ours.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), theirs.state_dict().values(), strict=True))
    assert not any("bias" in name for name in ours_cls(12, 3, 10, bias=False).state_dict())
    with pytest.raises(RuntimeError):
        ours_cls(12, 3, 10, bias=False).load_state_dict(theirs.state_dict(), strict=True)


def test_eval_mode_with_dropout_matches_torch_and_training_drops():
    torch.manual_seed(5)
    ours = TransformerEncoderLayer(8, 2, 6, dropout=0.3, activation="gelu").eval()
    twin = nn.TransformerEncoderLayer(8, 2, 6, dropout=0.3, activation="gelu", batch_first=True).eval()
    twin.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 4, 8)
    with torch.no_grad():
        want = twin(x)
        for impl in PATHS:
            set_impl(ours, impl)
            torch.testing.assert_close(ours(x), want, atol=1e-5, rtol=1e-5)
        ours.train()
        assert (ours(x) - want).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------
# KV cache


def stack(n, rotary=False, norm_first=False, seed=6):
    torch.manual_seed(seed)
    layers = nn.ModuleList(TransformerEncoderLayer(12, 3, 10, dropout=0.0, activation="gelu", norm_first=norm_first,
                                                   rotary=rotary) for _ in range(n)).double()
    for layer in layers:
        randomize(layer)
    return layers


def encode(layers, x, pasts=None, key_mask=None):
    """One causal pass of a stack over x, continuing each layer's cache; returns the output and the caches."""
    new = []
    for i, layer in enumerate(layers):
        x, kv, _ = layer.forward_with_state(x, key_mask=key_mask, is_causal=True, past=None if pasts is None else pasts[i])
        new.append(kv)
    return x, new


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("rotary", [False, True], ids=["plain", "rotary"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post", "pre"])
@pytest.mark.parametrize("padded", [False, True], ids=["", "padded"])
def test_encoder_kv_cache_in_chunks_equals_one_causal_pass(impl, rotary, norm_first, padded):
    layers = stack(2, rotary, norm_first)
    set_impl(layers, impl)
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    keys = padding_mask(torch.tensor([7, 4]), 7) if padded else None
    want, want_kv = encode(layers, x, key_mask=keys)
    pasts, outs, start = None, [], 0
    for size in (2, 1, 3, 1):  # the first chunk fills the cache, then one token or several at a time
        end = start + size
        out, pasts = encode(layers, x[:, start:end], pasts, None if keys is None else keys[:, :end])
        outs.append(out)
        start = end
    torch.testing.assert_close(torch.cat(outs, dim=1), want, atol=1e-12, rtol=1e-12)
    for (k, v), (wk, wv) in zip(pasts, want_kv, strict=True):
        assert k.shape == (2, 3, 7, 4)
        torch.testing.assert_close((k, v), (wk, wv), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("impl", PATHS)
def test_encoder_weights_with_a_cache_are_rows_of_the_full_weights(impl):
    layer = stack(1, rotary=True)[0]
    layer.self_attn.impl = impl
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    _, kv, full = layer.forward_with_state(x, is_causal=True, need_weights=True)
    assert full.shape == (2, 3, 5, 5)
    assert torch.all(full.masked_select(~causal_mask(5).expand(2, 3, 5, 5)) == 0)
    torch.testing.assert_close(full.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))
    _, past, _ = layer.forward_with_state(x[:, :3], is_causal=True)
    _, _, last = layer.forward_with_state(x[:, 3:], is_causal=True, past=past, need_weights=True)
    torch.testing.assert_close(last, full[:, :, 3:], atol=1e-12, rtol=1e-12)
    assert layer.forward_with_state(x, is_causal=True)[2] is None


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post", "pre"])
def test_decoder_kv_cache_and_projected_memory_equal_the_full_pass(impl, norm_first):
    torch.manual_seed(7)
    layer = TransformerDecoderLayer(12, 3, 10, dropout=0.0, norm_first=norm_first).double()
    randomize(layer)
    set_impl(layer, impl)
    x, memory = torch.randn(2, 6, 12, dtype=torch.float64), torch.randn(2, 4, 12, dtype=torch.float64)
    mem_keys = padding_mask(torch.tensor([4, 2]), 4)
    want, want_kv, want_w = layer.forward_with_state(x, memory, memory_key_mask=mem_keys, tgt_is_causal=True,
                                                     need_weights=True)
    torch.testing.assert_close(want, layer(x, memory, memory_key_mask=mem_keys, tgt_is_causal=True), atol=1e-12, rtol=1e-12)
    assert want_w.shape == (2, 3, 6, 4)
    assert torch.all(want_w[1, :, :, 2:] == 0)
    torch.testing.assert_close(want_w.sum(-1), torch.ones(2, 3, 6, dtype=torch.float64))

    projected = layer.project_memory(memory)  # once per source, reused at every step
    past, outs, weights, start = None, [], [], 0
    for size in (3, 1, 2):
        end = start + size
        out, past, w = layer.forward_with_state(x[:, start:end], projected, memory_key_mask=mem_keys, tgt_is_causal=True,
                                                past=past, need_weights=True)
        outs.append(out)
        weights.append(w)
        start = end
    torch.testing.assert_close(torch.cat(outs, 1), want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(torch.cat(weights, 2), want_w, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(past, want_kv, atol=1e-12, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Properties


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("rotary", [False, True], ids=["plain", "rotary"])
def test_causal_stack_outputs_ignore_later_tokens_exactly(impl, rotary):
    layers = stack(2, rotary, norm_first=rotary)
    set_impl(layers, impl)
    x = torch.randn(2, 8, 12, dtype=torch.float64)
    base = encode(layers, x)[0]
    for t, k in ((0, 1), (3, 1), (3, 4), (6, 1)):
        changed = x.clone()
        changed[:, t + k] = torch.randn(2, 12, dtype=torch.float64)
        out = encode(layers, changed)[0]
        assert torch.equal(out[:, :t + 1], base[:, :t + 1]), (t, k)
        assert (out[:, t + k] - base[:, t + k]).abs().min() > 0  # the change did reach position t + k


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_padding_invariance(impl, kind):
    """Extra padded positions, masked out as keys, leave the real positions' outputs unchanged."""
    torch.manual_seed(8)
    D = 8
    layer = (TransformerEncoderLayer if kind == "encoder" else TransformerDecoderLayer)(D, 2, 6, dropout=0.0).double()
    randomize(layer)
    set_impl(layer, impl)
    x, memory = torch.randn(2, 4, D, dtype=torch.float64), torch.randn(2, 3, D, dtype=torch.float64)
    junk = 50 * torch.randn(2, 3, D, dtype=torch.float64)
    padded_x, padded_memory = torch.cat([x, junk], 1), torch.cat([memory, junk[:, :2]], 1)
    lengths = torch.tensor([4, 3])
    if kind == "encoder":
        want = layer(x, key_mask=padding_mask(lengths, 4))
        got = layer(padded_x, key_mask=padding_mask(lengths, 7))
    else:
        want = layer(x, memory, tgt_key_mask=padding_mask(lengths, 4), tgt_is_causal=True)
        got = layer(padded_x, padded_memory, tgt_key_mask=padding_mask(lengths, 7),
                    memory_key_mask=padding_mask(torch.tensor([3, 3]), 5), tgt_is_causal=True)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(got[b, :n], want[b, :n], atol=1e-12, rtol=1e-12)
    unmasked = layer(padded_x) if kind == "encoder" else layer(padded_x, padded_memory, tgt_is_causal=True)
    assert (unmasked[0, :4] - want[0]).abs().max() > 1e-3  # without the mask the junk would matter


@pytest.mark.parametrize("impl", PATHS)
def test_encoder_without_positions_is_permutation_equivariant_and_rotary_is_not(impl):
    torch.manual_seed(9)
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    perm = torch.randperm(6)
    plain, rotary = stack(1)[0], stack(1, rotary=True)[0]
    set_impl(plain, impl)
    set_impl(rotary, impl)
    torch.testing.assert_close(plain(x[:, perm]), plain(x)[:, perm], atol=1e-12, rtol=1e-12)
    assert (rotary(x[:, perm]) - rotary(x)[:, perm]).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------
# The impl switch over a whole layer


def test_set_impl_reaches_every_sublayer_and_wins_over_the_context(monkeypatch):
    layer = TransformerEncoderLayer(8, 2, 6, dropout=0.0, rotary=True)
    switches = [m for m in layer.modules() if isinstance(m, ImplSwitch)]
    assert len(switches) == 10  # self_attn, its out_proj and rotary, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2
    set_impl(layer, "reference")
    assert {m.impl for m in switches} == {"reference"} and layer.self_attn.rotary.impl == "reference"

    def forbidden(*args, **kwargs):
        raise AssertionError("a fused kernel ran on the reference path")

    x = torch.randn(2, 3, 8)
    want = layer(x, is_causal=True)
    monkeypatch.setattr(F, "scaled_dot_product_attention", forbidden)
    monkeypatch.setattr(F, "layer_norm", forbidden)
    with use_impl("fused"):
        torch.testing.assert_close(layer(x, is_causal=True), want, atol=0, rtol=0)
    set_impl(layer, "auto")
    with use_impl("reference"):
        torch.testing.assert_close(layer(x, is_causal=True), want, atol=0, rtol=0)
    with pytest.raises(AssertionError, match="fused kernel"):
        layer(x, is_causal=True)  # auto outside any block is fused
    with pytest.raises(UserError, match="unknown impl 'refrence' \\(did you mean: reference"):
        set_impl(layer, "refrence")


# ---------------------------------------------------------------------------------------------------
# Bad input


def one_line_user_error(fn, match):
    with pytest.raises(UserError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", [TransformerEncoderLayer, TransformerDecoderLayer])
@pytest.mark.parametrize("kwargs, match", [
    ({"d_model": 10, "nhead": 3}, "not divisible by nhead=3"),
    ({"d_model": 8, "nhead": 0}, "not divisible"),
    ({"activation": "swish"}, "activation must be one of"),
    ({"dropout": 1.0}, "dropout"),
    ({"dim_feedforward": 0}, "dim_feedforward"),
], ids=["width-heads", "zero-heads", "activation", "dropout", "feedforward"])
def test_bad_construction(cls, kwargs, match):
    args = {"d_model": 8, "nhead": 2, "dim_feedforward": 6} | kwargs
    one_line_user_error(lambda: cls(**args), match)


@pytest.mark.parametrize("call, match", [
    (lambda enc, dec, x, m: enc(torch.randn(2, 3, 6)), r"takes \(B, T, 8\)"),
    (lambda enc, dec, x, m: enc(torch.randn(3, 8)), r"takes \(B, T, 8\)"),
    (lambda enc, dec, x, m: enc(x, attn_mask=torch.ones(3, 4, dtype=torch.bool)), "attn_mask has shape"),
    (lambda enc, dec, x, m: enc(x, attn_mask=torch.ones(3, 3)), "boolean"),
    (lambda enc, dec, x, m: enc(x, key_mask=torch.ones(2, 4, dtype=torch.bool)), "key_mask"),
    (lambda enc, dec, x, m: dec(torch.randn(2, 3, 6), m), r"decoder layer takes \(B, T, 8\)"),
    (lambda enc, dec, x, m: dec(x, torch.randn(2, 4, 6)), r"memory must be \(B, S, 8\)"),
    (lambda enc, dec, x, m: dec(x, torch.randn(3, 4, 8)), "memory has batch 3"),
    (lambda enc, dec, x, m: dec(x, m, memory_mask=torch.ones(3, 3, dtype=torch.bool)), "attn_mask has shape"),
    (lambda enc, dec, x, m: dec(x, m, memory_key_mask=torch.ones(2, 3, dtype=torch.bool)), "key_mask"),
    (lambda enc, dec, x, m: dec(x, m, tgt_key_mask=torch.ones(2, 3, dtype=torch.int8)), "key_mask"),
], ids=["enc-width", "enc-2d", "enc-mask-shape", "enc-mask-float", "enc-keys", "dec-width", "dec-memory-width",
        "dec-memory-batch", "dec-memory-mask", "dec-memory-keys", "dec-target-keys-int"])
def test_bad_input(call, match):
    enc, dec = TransformerEncoderLayer(8, 2, 6), TransformerDecoderLayer(8, 2, 6)
    x, memory = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    one_line_user_error(lambda: call(enc, dec, x, memory), match)
