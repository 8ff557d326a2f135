"""Contract of the speech models (models/speech.py): shapes, gradients, save/load, padding invariance on both
compute paths, the bidirectional encoder equal to a packed bidirectional LSTM, learning a tiny batch, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from archzoo.config import to_dict
from archzoo.errors import UserError
from archzoo.layers import LSTM, use_impl
from archzoo.models import create_model
from archzoo.models.speech import RecurrentEncoder, reverse_within
from archzoo.training.checkpoint import load_model, save_weights
from archzoo.training.config import resolve_config
from helpers import MODEL_FAMILIES

MODELS = MODEL_FAMILIES["speech"]
F_IN = 16
SMALL = {
    "speech_cnn": {"channels": (4, 8), "time_strides": (2, 2)},
    "speech_lstm": {"hidden_size": 8},
    "speech_bilstm": {"hidden_size": 8},
    "speech_crnn": {"channels": (4,), "time_strides": (2,), "hidden_size": 8},
    "speech_transformer": {"d_model": 16, "num_heads": 2, "num_layers": 2, "dim_feedforward": 32},
    "ctc_bilstm": {"hidden_size": 8, "num_layers": 2},
    "ctc_lstm": {"hidden_size": 8, "num_layers": 2},
}


def small(name: str, **extra: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_features=F_IN, num_classes=5, **SMALL[name], **extra)


def logits_of(out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", MODELS)
def test_shapes_lengths_and_finite(name: str) -> None:
    model = small(name).eval()
    x, lengths = model.example_inputs(3)
    assert x.shape == (3, 24, F_IN) and lengths.tolist() == [24, 17, 10]
    with torch.no_grad():
        out = model(x, lengths)
    if name.startswith("ctc"):
        logits, out_lengths = out
        # frames stacked in threes: ceil(L / 3)
        assert logits.shape == (3, 8, 5) and out_lengths.tolist() == [8, 6, 4]
        assert (logits[2, 4:] == 0).all()  # past its length a frame scores nothing
    else:
        assert out.shape == (3, 5)
    assert torch.isfinite(logits_of(out)).all()


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = small(name).train()
    out = logits_of(model(*model.example_inputs(4)))
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", MODELS)
def test_save_then_load_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    args = {"in_features": F_IN, "num_classes": 5, **SMALL[name]}
    cfg = resolve_config(None, ["task='spoken_digits'", f"model.name={name!r}",
                                *[f"model.args.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in args.items()]])
    model = small(name).eval()
    save_weights(model, tmp_path / "model.safetensors", to_dict(cfg), step=1)
    loaded, _ = load_model(tmp_path)
    inputs = model.example_inputs(3)
    with torch.no_grad():
        assert torch.equal(logits_of(loaded(*inputs)), logits_of(model(*inputs)))


@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("name", MODELS)
def test_padding_never_changes_an_utterance(name: str, impl: str) -> None:
    """An utterance alone, in a padded batch, and with garbage (not zeros) in its padding: same outputs."""
    model = small(name).eval()
    x, lengths = model.example_inputs(3)
    padded = torch.cat([x, torch.randn(3, 7, F_IN)], 1)
    padded[1, 17:] = torch.randn(14, F_IN)  # noise where utterance 1 has already ended
    with torch.no_grad(), use_impl(impl):
        batch = logits_of(model(padded, lengths))
        for i, n in enumerate(lengths.tolist()):
            alone = logits_of(model(x[i:i + 1, :n], lengths[i:i + 1]))
            got = batch[i:i + 1, :alone.shape[1]] if batch.dim() == 3 else batch[i:i + 1]
            torch.testing.assert_close(got, alone, atol=2e-5, rtol=1e-5)


def test_reverse_within_is_its_own_inverse_and_leaves_padding() -> None:
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    r = reverse_within(x, torch.tensor([5, 3]))
    assert r[:, :, 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    assert torch.equal(reverse_within(r, torch.tensor([5, 3])), x)


@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_bidirectional_encoder_equals_a_packed_bidirectional_lstm(impl: str) -> None:
    """The encoder's two single-direction LSTMs per layer over padded frames compute exactly what archzoo's
    bidirectional LSTM computes with lengths (packed sequences, torch.nn's semantics), forward and backward."""
    torch.manual_seed(0)
    encoder = RecurrentEncoder(6, 5, 2, bidirectional=True, dropout=0.0).double()
    packed = LSTM(6, 5, 2, bidirectional=True).double()
    with torch.no_grad():
        for layer, pair in enumerate(encoder.layers):
            for suffix, key in (("", "forward_lstm"), ("_reverse", "backward_lstm")):
                for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(packed, f"{w}_l{layer}{suffix}").copy_(getattr(pair[key], f"{w}_l0"))
    x = torch.randn(3, 9, 6, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 4, 1])
    with use_impl(impl):
        ours, _ = encoder(x, lengths)
        theirs, _ = packed(x, lengths=lengths)
    torch.testing.assert_close(ours, theirs)
    grad = torch.randn_like(ours)
    (g1,) = torch.autograd.grad(ours, x, grad)
    (g2,) = torch.autograd.grad(theirs, x, grad)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("name", ["speech_cnn", "speech_bilstm", "ctc_bilstm"])
def test_overfits_one_small_batch(name: str) -> None:
    torch.manual_seed(0)
    model = small(name).train()
    x, lengths = torch.randn(6, 20, F_IN), torch.tensor([20, 18, 16, 14, 12, 10])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    targets = torch.tensor([[1, 2], [2, 3], [3, 4], [4, 1], [1, 1], [2, 2]])
    for _ in range(150 if name.startswith("ctc") else 60):  # CTC first learns to emit blanks
        out = model(x, lengths)
        if name.startswith("ctc"):
            log_probs = out[0].log_softmax(2).transpose(0, 1)
            loss = F.ctc_loss(log_probs, targets, out[1], torch.full((6,), 2), blank=0)
        else:
            loss = F.cross_entropy(out, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2, loss.item()


@pytest.mark.parametrize("name", MODELS)
def test_bad_inputs_are_one_line_errors(name: str) -> None:
    model = small(name).eval()
    x, lengths = model.example_inputs(2)
    for bad_x, bad_lengths, needle in ((x[..., :-1], lengths, "feature frames"), (x, torch.tensor([24, 0]), "length"),
                                       (x, torch.tensor([25, 3]), "length"), (x, lengths[:1], "length")):
        with pytest.raises(UserError, match=needle) as excinfo:
            model(bad_x, bad_lengths)
        assert "\n" not in str(excinfo.value)


def test_invalid_configurations_are_refused() -> None:
    with pytest.raises(UserError, match="time stride"):
        create_model("speech_cnn", channels=(8, 8), time_strides=(2,))
    with pytest.raises(UserError, match="pooling 'last'"):
        create_model("speech_cnn", pooling="last")
    with pytest.raises(UserError, match="halve"):
        create_model("speech_cnn", in_features=4, channels=(4, 4, 4))
