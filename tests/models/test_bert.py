"""The encoder-only backbone and its classification head (models/bert.py): shapes, padding
invariance, bidirectionality, learning a task that needs the whole sequence, and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.models.bert import SequenceClassifier, TransformerEncoder


def classifier(pooling: str = "mean", norm_first: bool = False, dropout: float = 0.0) -> SequenceClassifier:
    torch.manual_seed(0)
    encoder = TransformerEncoder(vocab_size=12, max_len=16, d_model=16, num_layers=2, num_heads=4, dim_feedforward=32,
                                 dropout=dropout, norm_first=norm_first)
    return SequenceClassifier(encoder, num_classes=3, pooling=pooling, dropout=dropout).eval()


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes(pooling: str, norm_first: bool) -> None:
    model = classifier(pooling, norm_first)
    (ids,) = model.example_inputs(4)
    with torch.no_grad():
        assert model.encoder(ids).shape == (4, 8, 16)
        logits = model(ids)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_does_not_change_the_prediction(pooling: str) -> None:
    model = classifier(pooling)
    ids = torch.tensor([[3, 4, 5, 6, 0, 0]])
    longer = torch.tensor([[3, 4, 5, 6, 0, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(longer), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(model(ids), model(ids[:, :4]), atol=1e-6, rtol=1e-6)


def test_every_position_sees_the_whole_sentence() -> None:
    """Bidirectional: changing the last token changes the first position's output."""
    model = classifier()
    ids = torch.tensor([[3, 4, 5, 6]])
    other = torch.tensor([[3, 4, 5, 7]])
    with torch.no_grad():
        assert not torch.allclose(model.encoder(ids)[:, 0], model.encoder(other)[:, 0])


def test_learns_a_task_that_needs_attention_across_the_sequence() -> None:
    """Label = whether the first token reappears later in the (padded) sequence."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 12, (512, 8), generator=generator)
    lengths = torch.randint(4, 9, (512,), generator=generator)
    ids[torch.arange(8)[None, :] >= lengths[:, None]] = 0
    labels = ((ids[:, 1:] == ids[:, :1]).any(1)).long()
    torch.manual_seed(0)
    encoder = TransformerEncoder(vocab_size=12, max_len=8, d_model=32, num_layers=2, num_heads=4, dim_feedforward=64,
                                 dropout=0.0)
    model = SequenceClassifier(encoder, num_classes=2, pooling="cls", dropout=0.0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = F.cross_entropy(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = (model.eval()(ids).argmax(1) == labels).float().mean().item()
    assert accuracy > 0.9, accuracy


def test_bad_input() -> None:
    with pytest.raises(UserError, match="not divisible"):
        TransformerEncoder(vocab_size=12, d_model=18, num_heads=4)
    with pytest.raises(UserError, match="pad_id"):
        TransformerEncoder(vocab_size=12, pad_id=12)
    encoder = TransformerEncoder(vocab_size=12, max_len=8, d_model=16, num_heads=4)
    with pytest.raises(UserError, match="pooling"):
        SequenceClassifier(encoder, 2, pooling="max")
    with pytest.raises(UserError, match="longer than the model's maximum context 8"):
        encoder(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(UserError, match=r"\(B, T\)"):
        encoder(torch.ones(9, dtype=torch.long))
