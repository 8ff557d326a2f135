"""Contract of the recurrent language models (models/rnn_lm.py): shapes, state, gradients, save/load,
strict state_dict, carried state equals one long pass, and learning on real text."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.data.text import CharVocab, load_text
from archzoo.errors import UserError
from archzoo.layers.impl import use_impl
from archzoo.models import create_model
from helpers import MODEL_FAMILIES

LMS = MODEL_FAMILIES["recurrent_lm"]
SMALL = {"vocab_size": 11, "embedding_dim": 6, "hidden_size": 10, "num_layers": 2}


@pytest.mark.parametrize("name", LMS)
def test_shapes_state_and_determinism(name: str) -> None:
    model = create_model(name, **SMALL).eval()
    (x,) = model.example_inputs(3)
    with torch.no_grad():
        logits, state = model(x)
    assert logits.shape == (3, x.shape[1], 11) and torch.isfinite(logits).all()
    h = state[0] if name == "lstm_lm" else state
    assert h.shape == (2, 3, 10)
    with torch.no_grad():
        assert torch.equal(model(x)[0], logits)
    with pytest.raises(UserError, match=r"\(B, T\)"):
        model(x[0])


@pytest.mark.parametrize("name", LMS)
@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_carried_state_equals_one_long_pass(name: str, impl: str) -> None:
    """Reading a sequence in chunks with the state carried gives the logits of one pass: what
    evaluation over streams and token-by-token generation rely on."""
    model = create_model(name, **SMALL).eval()
    x = torch.randint(0, 11, (2, 12))
    with torch.no_grad(), use_impl(impl):
        full, _ = model(x)
        state, parts = None, []
        for chunk in (x[:, :5], x[:, 5:6], x[:, 6:]):
            logits, state = model(chunk, state)
            parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", LMS)
def test_state_dict_loads_strictly_and_names_match_torch_nn(name: str) -> None:
    model = create_model(name, **SMALL)
    keys = set(model.state_dict())
    assert {"rnn.weight_ih_l0", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "embedding.weight", "head.weight"} <= keys
    with pytest.raises(RuntimeError, match="size mismatch"):
        create_model(name, **{**SMALL, "vocab_size": 12}).load_state_dict(model.state_dict(), strict=True)


def test_tied_weights_share_the_embedding() -> None:
    model = create_model("lstm_lm", vocab_size=11, embedding_dim=10, hidden_size=10, tie_weights=True)
    assert model.head.weight is model.embedding.weight
    with pytest.raises(UserError, match="tie_weights"):
        create_model("lstm_lm", vocab_size=11, embedding_dim=6, hidden_size=10, tie_weights=True)


@pytest.mark.parametrize("name", LMS)
def test_overfits_one_batch_of_real_text(name: str) -> None:
    text = load_text("tinyshakespeare")[:20_000]
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    x = torch.stack([ids[i:i + 33] for i in range(0, 16 * 500, 500)])
    torch.manual_seed(0)
    model = create_model(name, vocab_size=len(vocab), embedding_dim=32, hidden_size=128, num_layers=1, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        logits, _ = model(x[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 < losses[0], (losses[0], losses[-1])
