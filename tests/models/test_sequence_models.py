"""Contract of the sequence models (models/sequence.py): shapes, causality, gradients, save/load, the
TCN's receptive field, orthogonal recurrent initialisation, and learning the adding problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.config import to_dict
from archzoo.errors import UserError
from archzoo.layers import GRU, LSTM, RNN
from archzoo.layers.recurrent import init_orthogonal_recurrent_
from archzoo.models import create_model, list_models
from archzoo.training.checkpoint import load_model, save_weights
from archzoo.training.config import resolve_config
from helpers import MODEL_FAMILIES

MODELS = MODEL_FAMILIES["sequence_model"]
SMALL = {"seq_rnn": {"hidden_size": 12}, "seq_lstm": {"hidden_size": 8}, "seq_gru": {"hidden_size": 8},
         "seq_transformer": {"d_model": 8, "num_heads": 2, "dim_feedforward": 16},
         "seq_tcn": {"channels": 6, "num_layers": 4}}


def test_the_family_is_registered() -> None:
    assert list_models("seq_*") == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_shapes_causality_and_bad_input(name: str) -> None:
    """Output t depends on inputs 0..t only: changing step 9 leaves steps 0..8 alone and changes step 9."""
    model = create_model(name, input_size=3, output_size=5, **SMALL[name]).eval()
    x = torch.randn(2, 14, 3)
    with torch.no_grad():
        y = model(x)
        changed = x.clone()
        changed[:, 9] += 1.0
        y2 = model(changed)
    assert y.shape == (2, 14, 5) and torch.isfinite(y).all()
    torch.testing.assert_close(y2[:, :9], y[:, :9])
    assert not torch.allclose(y2[:, 9], y[:, 9])
    with pytest.raises(UserError, match=r"\(B, T, 3\)"):
        model(torch.randn(2, 14, 4))


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient_and_save_load_is_exact(name: str, tmp_path: Path) -> None:
    cfg = resolve_config(None, [f"model.name={name!r}"] + [f"model.args.{k}={v}" for k, v in SMALL[name].items()])
    torch.manual_seed(0)
    model = create_model(name, **cfg.model.args)
    (x,) = model.example_inputs(3)
    model(x).pow(2).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    save_weights(model, tmp_path / "model.safetensors", to_dict(cfg), step=1)
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_tcn_receptive_field_is_what_the_docstring_says() -> None:
    """With kernel 2 and 4 blocks of two convolutions, step t sees t - 30 .. t: 1 + 2 (2^4 - 1) = 31 steps."""
    model = create_model("seq_tcn", input_size=1, output_size=1, channels=4, num_layers=4).eval()
    assert model.receptive_field == 31
    x = torch.zeros(1, 40, 1, requires_grad=True)
    model(x)[0, -1, 0].backward()
    seen = (x.grad[0, :, 0] != 0).nonzero().flatten()
    assert seen.min() >= 40 - 31 and seen.max() == 39


@pytest.mark.parametrize("layer", [RNN(3, 6), LSTM(3, 6), GRU(3, 6, num_layers=2, bidirectional=True)])
def test_orthogonal_init_makes_every_recurrent_block_orthogonal(layer) -> None:
    before = {k: v.clone() for k, v in layer.named_parameters() if "weight_ih" in k}
    init_orthogonal_recurrent_(layer, gain=1.0)
    gates = {RNN: 1, LSTM: 4, GRU: 3}[type(layer)]
    for name, weight in layer.named_parameters():
        if "weight_hh" in name:
            for block in weight.detach().chunk(gates, 0):
                torch.testing.assert_close(block @ block.T, torch.eye(6), atol=1e-5, rtol=0)
        elif name in before:
            assert torch.equal(weight, before[name])  # input weights keep torch.nn's initialisation


def test_orthogonal_rnn_lm_and_seq_rnn_options() -> None:
    for model in (create_model("rnn_lm", hidden_size=8, num_layers=1, recurrent_init="orthogonal"),
                  create_model("seq_rnn", hidden_size=8, recurrent_init="orthogonal")):
        w = model.rnn.weight_hh_l0.detach()
        torch.testing.assert_close(w @ w.T, torch.eye(8), atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="recurrent_init"):
        create_model("seq_lstm", recurrent_init="identity")


def test_lstm_learns_the_adding_problem_at_short_length() -> None:
    """A learning test on the real task: at T = 10 the LSTM gets under a third of the always-1 baseline (MSE 1/6)."""
    from archzoo.data.synthetic import adding_problem

    torch.manual_seed(0)
    model = create_model("seq_lstm", hidden_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(300):
        x, y = adding_problem(32, 10, torch.Generator().manual_seed(step))
        loss = (model(x)[:, -1, 0] - y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = adding_problem(500, 10, torch.Generator().manual_seed(10_000))
    with torch.no_grad():
        assert (model(x)[:, -1, 0] - y).pow(2).mean() < 0.05
