"""Recurrent layers: reference vs fused vs torch.nn parity, properties, the impl switch and bad input."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import archzoo.layers.recurrent as recurrent
from archzoo.errors import UserError
from archzoo.layers import GRU, LSTM, RNN, gru_cell, lstm_cell, rnn_relu_cell, rnn_tanh_cell, use_impl

OURS = {"rnn_tanh": partial(RNN, nonlinearity="tanh"), "rnn_relu": partial(RNN, nonlinearity="relu"),
        "lstm": LSTM, "gru": GRU}
TORCH = {"rnn_tanh": partial(nn.RNN, nonlinearity="tanh"), "rnn_relu": partial(nn.RNN, nonlinearity="relu"),
         "lstm": nn.LSTM, "gru": nn.GRU}
KINDS = list(OURS)
PATHS = ("reference", "fused")
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}


def states(h):
    """h_n or (h_n, c_n) as a tuple."""
    return tuple(h) if isinstance(h, tuple | list) else (h,)


def make(kind, input_size=3, hidden_size=5, dtype=torch.float64, **kwargs):
    return OURS[kind](input_size, hidden_size, dtype=dtype, **kwargs)


def torch_twin(ours, kind):
    """torch.nn's layer with the same configuration, loaded strictly from ours."""
    twin = TORCH[kind](ours.input_size, ours.hidden_size, num_layers=ours.num_layers, bias=ours.bias,
                       batch_first=ours.batch_first, dropout=ours.dropout, bidirectional=ours.bidirectional,
                       dtype=next(ours.parameters()).dtype)
    twin.load_state_dict(ours.state_dict(), strict=True)
    return twin


def call(module, x, hx, lengths):
    """Run ours directly, torch.nn through pack_padded_sequence / pad_packed_sequence when lengths is given."""
    if isinstance(module, nn.RNNBase) and lengths is not None:
        packed = pack_padded_sequence(x, lengths, batch_first=module.batch_first, enforce_sorted=False)
        out, h = module(packed, hx)
        total = x.shape[1 if module.batch_first else 0]
        return pad_packed_sequence(out, batch_first=module.batch_first, total_length=total)[0], h
    if isinstance(module, nn.RNNBase):
        return module(x, hx)
    return module(x, hx, lengths=lengths)


def run(module, x, hx, lengths, probes):
    """Forward and backward of a fixed random projection; returns outputs, states and every gradient."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    hx = None if hx is None else tuple(h.detach().clone().requires_grad_() for h in hx)
    h_arg = hx if hx is None or len(hx) == 2 else hx[0]
    out, h = call(module, x, h_arg, lengths)
    finals = states(h)
    loss = (out * probes[0]).sum() + sum((s * p).sum() for s, p in zip(finals, probes[1:], strict=True))
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return {"output": out.detach(), "states": [s.detach() for s in finals], "grad_input": x.grad,
            "grad_hx": None if hx is None else [h.grad for h in hx], "grad_params": grads}


def assert_same(a, b, tol, where):
    torch.testing.assert_close(a["output"], b["output"], **tol, msg=lambda m: f"{where} output: {m}")
    for s, t in zip(a["states"], b["states"], strict=True):
        torch.testing.assert_close(s, t, **tol, msg=lambda m: f"{where} state: {m}")
    torch.testing.assert_close(a["grad_input"], b["grad_input"], **tol, msg=lambda m: f"{where} grad input: {m}")
    if a["grad_hx"] is not None:
        for s, t in zip(a["grad_hx"], b["grad_hx"], strict=True):
            torch.testing.assert_close(s, t, **tol, msg=lambda m: f"{where} grad hx: {m}")
    assert a["grad_params"].keys() == b["grad_params"].keys()
    for name, g in a["grad_params"].items():
        assert g is not None, f"{where}: no gradient for {name}"
        torch.testing.assert_close(g, b["grad_params"][name], **tol, msg=lambda m, n=name: f"{where} grad {n}: {m}")


# batch, steps, input, hidden, layers, bias, bidirectional, batch_first, initial state, lengths
CASES = {
    "plain": (3, 4, 3, 5, 1, True, False, True, False, None),
    "no-bias-batch1-length1": (1, 1, 3, 5, 1, False, False, True, False, None),
    "stacked-bi-time-major-hx": (2, 5, 4, 3, 2, True, True, False, True, None),
    "three-layers-bi-lengths-hx": (4, 6, 3, 5, 3, True, True, True, True, [6, 2, 5, 1]),
    "no-bias-lengths-time-major": (3, 5, 2, 4, 2, False, False, False, False, [3, 5, 1]),
    "batch1-bi-full-length": (1, 4, 3, 5, 1, True, True, True, True, [4]),
    "length1-everywhere": (3, 3, 3, 2, 2, True, True, True, False, [1, 1, 1]),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_parity_reference_fused_torch(kind, case, dtype):
    batch, steps, isz, hsz, layers, bias, bi, batch_first, with_hx, lengths = CASES[case]
    ours = make(kind, isz, hsz, dtype, num_layers=layers, bias=bias, bidirectional=bi, batch_first=batch_first)
    twin = torch_twin(ours, kind)
    x = torch.randn((batch, steps, isz) if batch_first else (steps, batch, isz), dtype=dtype)
    n_states = 2 if kind == "lstm" else 1
    hx = tuple(torch.randn(layers * (1 + bi), batch, hsz, dtype=dtype) for _ in range(n_states)) if with_hx else None
    lengths = None if lengths is None else torch.tensor(lengths)
    out_shape = (batch, steps, hsz * (1 + bi)) if batch_first else (steps, batch, hsz * (1 + bi))
    probes = [torch.randn(out_shape, dtype=dtype)] + [torch.randn(layers * (1 + bi), batch, hsz, dtype=dtype)] * n_states

    expected = run(twin, x, hx, lengths, probes)
    assert expected["output"].shape == out_shape
    for impl in PATHS:
        ours.impl = impl
        assert_same(run(ours, x, hx, lengths, probes), expected, TOL[dtype], f"{kind}/{case}/{impl}")


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_loads_both_ways_and_init_matches_torch(kind):
    torch.manual_seed(7)
    ours = OURS[kind](3, 5, num_layers=2, bidirectional=True)
    torch.manual_seed(7)
    theirs = TORCH[kind](3, 5, num_layers=2, bidirectional=True, batch_first=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert a.shape == b.shape and torch.equal(a, b), name  # same order, so the same seeded init
    bound = 1 / 5 ** 0.5
    assert all(p.abs().max() <= bound for p in ours.parameters())

    other = TORCH[kind](3, 5, num_layers=2, bidirectional=True, batch_first=True)
    ours.load_state_dict(other.state_dict(), strict=True)
    x = torch.randn(2, 4, 3)
    for impl in PATHS:
        ours.impl = impl
        torch.testing.assert_close(ours(x)[0], other(x)[0], atol=1e-6, rtol=1e-6)
    without_bias = OURS[kind](3, 5, bias=False)
    assert list(without_bias.state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    with pytest.raises(RuntimeError):
        without_bias.load_state_dict(other.state_dict(), strict=True)


# ---------------------------------------------------------------------------------------------------
# Cells


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_cells_match_torch_cells(dtype):
    x, h, c = torch.randn(2, 3, dtype=dtype), torch.randn(2, 5, dtype=dtype), torch.randn(2, 5, dtype=dtype)
    tol = TOL[dtype]
    for ours, theirs, gates, state in ((rnn_tanh_cell, torch.rnn_tanh_cell, 1, h), (rnn_relu_cell, torch.rnn_relu_cell, 1, h),
                                       (gru_cell, torch.gru_cell, 3, h), (lstm_cell, torch.lstm_cell, 4, (h, c))):
        w_ih, w_hh = torch.randn(gates * 5, 3, dtype=dtype), torch.randn(gates * 5, 5, dtype=dtype)
        b_ih, b_hh = torch.randn(gates * 5, dtype=dtype), torch.randn(gates * 5, dtype=dtype)
        for biases in ((b_ih, b_hh), (None, None)):
            got, want = ours(x, state, w_ih, w_hh, *biases), theirs(x, state, w_ih, w_hh, *biases)
            torch.testing.assert_close(got, want, **tol)


def test_gru_resets_after_the_matmul_not_before():
    """PyTorch's r ⊙ (W_hn h + b_hn), not the paper's W_hn (r ⊙ h): with b_hn = 0 they still differ."""
    torch.manual_seed(3)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    w_ih, w_hh = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 4, dtype=torch.float64)
    got = gru_cell(x, h, w_ih, w_hh)
    gi_r, gi_z, gi_n = (x @ w_ih.T).chunk(3, 1)
    w_hr, w_hz, w_hn = w_hh.chunk(3, 0)
    r, z = torch.sigmoid(gi_r + h @ w_hr.T), torch.sigmoid(gi_z + h @ w_hz.T)
    paper = (1 - z) * torch.tanh(gi_n + (r * h) @ w_hn.T) + z * h
    pytorch = (1 - z) * torch.tanh(gi_n + r * (h @ w_hn.T)) + z * h
    torch.testing.assert_close(got, pytorch)
    assert (got - paper).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------
# Properties


@pytest.mark.parametrize("variable", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_backward_half_is_forward_layer_on_reversed_input(kind, impl, variable):
    bi = make(kind, bidirectional=True, impl=impl)
    fwd = make(kind, impl=impl)
    with torch.no_grad():
        for name, p in fwd.named_parameters():
            p.copy_(getattr(bi, name + "_reverse"))
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1]) if variable else torch.tensor([6, 6, 6])
    reversed_x = x.clone()
    for b, n in enumerate(lengths.tolist()):
        reversed_x[b, :n] = x[b, :n].flip(0)  # reverse each sequence within its own length
    out, h = bi(x, lengths=lengths if variable else None)
    out_f, h_f = fwd(reversed_x, lengths=lengths if variable else None)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :n, 5:], out_f[b, :n].flip(0), atol=1e-12, rtol=1e-12)
    for s, s_f in zip(states(h), states(h_f), strict=True):
        torch.testing.assert_close(s[1], s_f[0], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_padding_invariance_and_each_sequence_alone(kind, impl):
    model = make(kind, num_layers=2, bidirectional=True, impl=impl)
    lengths = torch.tensor([5, 2, 4, 1])
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    garbage = x.clone()
    for b, n in enumerate(lengths.tolist()):
        garbage[b, n:] = 50 * torch.randn(5 - n, 3, dtype=torch.float64)
    out, h = model(x, lengths=lengths)
    out_g, h_g = model(garbage, lengths=lengths)
    assert torch.equal(out, out_g)
    assert all(torch.equal(s, t) for s, t in zip(states(h), states(h_g), strict=True))
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(out[b, n:] == 0)
        alone, h_alone = model(x[b:b + 1, :n])
        torch.testing.assert_close(out[b:b + 1, :n], alone, atol=1e-12, rtol=1e-12)
        for s, t in zip(states(h), states(h_alone), strict=True):
            torch.testing.assert_close(s[:, b:b + 1], t, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", KINDS)
def test_unpacked_path_equals_the_packed_one(kind, bidirectional):
    """forward_unpacked (traceable, for export) gives forward()'s output and h_n on a variable-length batch,
    with or without gradients, and reversing within lengths is an involution that keeps the padding."""
    model = make(kind, num_layers=2, bidirectional=bidirectional, impl="fused")
    lengths = torch.tensor([5, 2, 4, 1])
    x = torch.randn(4, 5, 3, dtype=torch.float64, requires_grad=True)
    out, h = model(x, lengths=lengths)
    out_u, h_u = model.forward_unpacked(x, lengths)
    torch.testing.assert_close(out_u, out, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(h_u, states(h)[0], atol=1e-12, rtol=1e-12)
    grad, = torch.autograd.grad((out * out).sum() + states(h)[0].sum(), x)
    grad_u, = torch.autograd.grad((out_u * out_u).sum() + h_u.sum(), x)
    torch.testing.assert_close(grad_u, grad, atol=1e-12, rtol=1e-12)
    flipped = recurrent.reverse_within_lengths(x, lengths)
    assert torch.equal(flipped[1, :2], x[1, :2].flip(0)) and torch.equal(flipped[1, 2:], x[1, 2:])
    assert torch.equal(recurrent.reverse_within_lengths(flipped, lengths), x)
    with pytest.raises(UserError, match="every length must be in"):
        model.forward_unpacked(x, torch.tensor([6, 1, 1, 1]))


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_only_between_layers_and_only_in_training(kind, impl):
    model = make(kind, num_layers=2, dropout=0.5, impl=impl)
    plain = make(kind, num_layers=2, impl=impl)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])
    assert torch.equal(model(x)[0], plain(x)[0])
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])
    # dropout=1 zeroes the second layer's input: its output forgets x, the first layer's state does not.
    model.dropout = 1.0
    (out_1, h_1), (out_2, h_2) = model(x), model(torch.randn_like(x))
    assert torch.equal(out_1, out_2)
    assert not torch.allclose(states(h_1)[0][0], states(h_2)[0][0])
    # one layer: nothing to drop between, so training changes nothing
    single = make(kind, dropout=0.5, impl=impl).train()
    assert torch.equal(single(x)[0], single.eval()(x)[0])


# ---------------------------------------------------------------------------------------------------
# The impl switch on real layers


@pytest.mark.parametrize("kind", KINDS)
def test_impl_switch_picks_the_path(kind, monkeypatch):
    calls = []
    for path in PATHS:
        original = getattr(recurrent, f"recurrent_{path}")
        spy = lambda *a, _path=path, _original=original, **k: calls.append(_path) or _original(*a, **k)
        monkeypatch.setattr(recurrent, f"recurrent_{path}", spy)
    model = make(kind)
    x = torch.randn(2, 3, 3, dtype=torch.float64)

    def used(fn):
        calls.clear()
        fn()
        return calls[:]

    assert used(lambda: model(x)) == ["fused"]
    with use_impl("reference"):
        assert used(lambda: model(x)) == ["reference"]
        with use_impl("fused"):
            assert used(lambda: model(x)) == ["fused"]
        model.impl = "fused"  # the instance overrides the context
        assert used(lambda: model(x)) == ["fused"]
    model.impl = "reference"
    assert used(lambda: model(x)) == ["reference"]
    with use_impl("fused"):
        assert used(lambda: model(x)) == ["reference"]
    assert make(kind, impl="reference").impl == "reference"
    with pytest.raises(UserError, match="reference"):
        model.impl = "slow"
    with pytest.raises(UserError):
        make(kind, impl="cudnn")


@pytest.mark.parametrize("trained_with", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_trained_through_one_path_runs_through_the_other(kind, trained_with):
    model = make(kind, num_layers=2, bidirectional=True, impl=trained_with)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x, target, lengths = torch.randn(3, 5, 3, dtype=torch.float64), torch.randn(3, 5, 10, dtype=torch.float64), [5, 3, 2]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        loss = ((model(x, lengths=lengths)[0] - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())
    results = {}
    for impl in PATHS:
        model.impl = impl
        results[impl] = model(x, lengths=lengths)
    torch.testing.assert_close(results["reference"], results["fused"], atol=1e-10, rtol=1e-10)
    # the same three steps through the other path reach the same parameters
    other = make(kind, num_layers=2, bidirectional=True, impl=PATHS[trained_with == "reference"])
    other.load_state_dict(start)
    opt = torch.optim.SGD(other.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        ((other(x, lengths=lengths)[0] - target) ** 2).mean().backward()
        opt.step()
    for name, value in other.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[name], atol=1e-10, rtol=1e-10)


# ---------------------------------------------------------------------------------------------------
# Bad input


def bad_calls(kind):
    lstm = kind == "lstm"
    good_h = torch.zeros(2, 2, 5)
    return {
        "2-D input": lambda m: m(torch.randn(4, 3)),
        "4-D input": lambda m: m(torch.randn(2, 4, 3, 1)),
        "wrong feature size": lambda m: m(torch.randn(2, 4, 7)),
        "wrong dtype": lambda m: m(torch.randn(2, 4, 3, dtype=torch.float64)),
        "no time steps": lambda m: m(torch.randn(2, 0, 3)),
        "hx wrong batch": lambda m: m(torch.randn(2, 4, 3), (torch.zeros(2, 3, 5),) * 2 if lstm else torch.zeros(2, 3, 5)),
        "hx wrong layers": lambda m: m(torch.randn(2, 4, 3), (torch.zeros(1, 2, 5),) * 2 if lstm else torch.zeros(1, 2, 5)),
        "hx wrong hidden": lambda m: m(torch.randn(2, 4, 3), (good_h, torch.zeros(2, 2, 4)) if lstm else torch.zeros(2, 2, 4)),
        "hx wrong kind": lambda m: m(torch.randn(2, 4, 3), good_h if lstm else (good_h, good_h)),
        "lengths wrong size": lambda m: m(torch.randn(2, 4, 3), lengths=torch.tensor([4, 4, 4])),
        "lengths 2-D": lambda m: m(torch.randn(2, 4, 3), lengths=torch.tensor([[4, 4]])),
        "lengths zero": lambda m: m(torch.randn(2, 4, 3), lengths=torch.tensor([4, 0])),
        "lengths past T": lambda m: m(torch.randn(2, 4, 3), lengths=torch.tensor([5, 1])),
        "lengths float": lambda m: m(torch.randn(2, 4, 3), lengths=torch.tensor([4.0, 2.0])),
        "lengths not numbers": lambda m: m(torch.randn(2, 4, 3), lengths=["a", "b"]),
    }


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_a_one_line_user_error(kind, impl):
    model = OURS[kind](3, 5, num_layers=2, impl=impl)
    for what, bad in bad_calls(kind).items():
        with pytest.raises(UserError) as err:
            bad(model)
        assert "\n" not in str(err.value) and type(model).__name__ in str(err.value), what
    model(torch.randn(2, 4, 3), lengths=[4, 1])  # a list of ints is accepted too


@pytest.mark.parametrize("kind", KINDS)
def test_bad_constructor_arguments(kind):
    for kwargs in ({"hidden_size": 0}, {"input_size": -1}, {"num_layers": 0}, {"num_layers": 1.5},
                   {"dropout": 1.5}, {"dropout": -0.1}, {"impl": "fast"}):
        args = {"input_size": 3, "hidden_size": 5} | kwargs
        with pytest.raises(UserError) as err:
            OURS[kind](**args)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="nonlinearity"):
        RNN(3, 5, nonlinearity="sigmoid")


# ---------------------------------------------------------------------------------------------------
# Mixed precision and devices


@pytest.mark.parametrize("impl", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_bf16_autocast_on_cpu_runs_and_stays_close(kind, impl):
    model = OURS[kind](3, 8, num_layers=2, bidirectional=True, impl=impl)
    x = torch.randn(3, 5, 3)
    for lengths in (None, torch.tensor([5, 2, 4])):
        want_out, want_h = model(x, lengths=lengths)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, h = model(x.requires_grad_(), lengths=lengths)
        assert out.shape == want_out.shape and torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), want_out, atol=0.05, rtol=0.05)
        for s, t in zip(states(h), states(want_h), strict=True):
            torch.testing.assert_close(s.float(), t, atol=0.05, rtol=0.05)
        out.float().sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        model.zero_grad()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_fused_matches_reference(kind, recwarn):
    model = make(kind, num_layers=2, bidirectional=True, dtype=torch.float32).cuda()
    x = torch.randn(3, 5, 3, device="cuda")
    lengths = torch.tensor([5, 2, 4], device="cuda")
    with use_impl("reference"):
        want = model(x, lengths=lengths)
    got = model(x, lengths=lengths)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not [w for w in recwarn if "contiguous chunk of memory" in str(w.message)]
