"""Contract of the sentence classifiers (models/sentence.py, bert_classifier in models/bert.py): shapes,
gradients, save/load, strict state_dict, padding invariance under both compute paths, learning a tiny
batch, Kim's max-norm, NBSVM's log-count ratios, and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.impl import use_impl
from archzoo.models import create_model
from helpers import MODEL_FAMILIES

MODELS = MODEL_FAMILIES["sentence_classifier"]
V = 40
SMALL = {
    "textcnn": {"embedding_dim": 12, "num_maps": 6},
    "bilstm_classifier": {"embedding_dim": 12, "hidden_size": 8},
    "bigru_classifier": {"embedding_dim": 12, "hidden_size": 8},
    "bert_classifier": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "max_len": 32},
    "nbsvm": {"bigram_buckets": 97},
}


def small(name: str, **extra: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, vocab_size=V, num_classes=3, **SMALL[name], **extra)


@pytest.mark.parametrize("name", MODELS)
def test_shapes_finite_and_deterministic_in_eval(name: str) -> None:
    model = small(name).eval()
    for batch_size in (1, 4):
        (ids,) = model.example_inputs(batch_size)
        with torch.no_grad():
            logits = model(ids)
            assert logits.shape == (batch_size, 3) and torch.isfinite(logits).all()
            assert torch.equal(model(ids), logits)


@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("name", MODELS)
def test_padding_never_changes_a_sentence_logits(name: str, impl: str) -> None:
    """A sentence alone, in a batch padded to a longer neighbour, and with extra padding columns: same
    logits. The bi-RNNs run with lengths, the CNN leaves all-padding windows out of the max, BERT
    masks padding keys, NBSVM counts no n-gram that touches padding."""
    model = small(name).eval()
    sentence = torch.tensor([[5, 9, 3, 7]])
    batch = torch.tensor([[5, 9, 3, 7, 0, 0, 0, 0], [4, 8, 2, 6, 11, 12, 13, 14]])
    with torch.no_grad(), use_impl(impl):
        alone = model(sentence)
        torch.testing.assert_close(model(batch)[:1], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(F.pad(sentence, (0, 5))), alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["bilstm_classifier", "bigru_classifier", "textcnn"])
def test_reference_and_fused_paths_agree(name: str) -> None:
    model = small(name).eval()
    (ids,) = model.example_inputs(5)
    with torch.no_grad():
        with use_impl("reference"):
            reference = model(ids)
        with use_impl("fused"):
            fused = model(ids)
    torch.testing.assert_close(reference, fused, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["max", "last"])
def test_birnn_reads_both_directions(pooling: str) -> None:
    """Changing the first word and changing the last word both change the logits."""
    model = small("bilstm_classifier", pooling=pooling).eval()
    ids = torch.tensor([[5, 9, 3, 7]])
    with torch.no_grad():
        base = model(ids)
        assert not torch.allclose(model(torch.tensor([[6, 9, 3, 7]])), base)
        assert not torch.allclose(model(torch.tensor([[5, 9, 3, 8]])), base)


@pytest.mark.parametrize("name", MODELS)
def test_overfits_a_tiny_batch(name: str) -> None:
    torch.manual_seed(0)
    model = small(name, dropout=0.0).train()
    ids = torch.randint(2, V, (12, 7))
    ids[torch.arange(12), torch.randint(1, 7, (12,))] = 0
    ids = torch.where(ids.eq(0).cummax(1).values, torch.zeros_like(ids), ids)  # padding runs to the end
    labels = torch.arange(12) % 3
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2 if name == "nbsvm" else 1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(ids), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert (model(ids).argmax(1) == labels).all(), f"{name}: final loss {loss.item():.3f}"


def test_textcnn_max_norm_bounds_each_class_weight() -> None:
    model = small("textcnn", max_norm=0.5).train()
    with torch.no_grad():
        model.output.weight.mul_(100)
    (ids,) = model.example_inputs(2)
    model(ids)
    assert torch.all(model.output.weight.norm(dim=1) <= 0.5 + 1e-6)
    unconstrained = small("textcnn", max_norm=0.0).train()
    with torch.no_grad():
        unconstrained.output.weight.mul_(100)
    unconstrained(ids)
    assert torch.all(unconstrained.output.weight.norm(dim=1) > 0.5)


def test_textcnn_wide_convolution_counts_every_window_touching_a_word() -> None:
    """A one-word sentence still fills every width-5 filter: wide convolution, as Kim's padding."""
    model = small("textcnn", widths=(5,)).eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[7]]))).all()


def test_nbsvm_log_count_ratios_match_the_formula() -> None:
    model = create_model("nbsvm", vocab_size=6, num_classes=2, bigram_buckets=5, alpha=1.0)
    ids = torch.tensor([[2, 3, 2], [2, 4, 0], [5, 0, 0]])
    labels = torch.tensor([1, 1, 0])
    model.fit_counts(ids, labels)

    def bucket(a: int, b: int) -> int:
        return 6 + (a * 1_000_003 + b) % 5

    # binarised: "2 3 2" counts 2, 3, (2,3), (3,2) once each
    positive_sets = [{2, 3, bucket(2, 3), bucket(3, 2)}, {2, 4, bucket(2, 4)}]
    assert len({bucket(2, 3), bucket(3, 2), bucket(2, 4)}) == 3  # no collision in this example
    p = torch.ones(11, dtype=torch.float64)  # alpha = 1
    for grams in positive_sets:
        for g in grams:
            p[g] += 1
    q = torch.ones(11, dtype=torch.float64)
    q[5] += 1
    r = (p / p.sum()).log() - (q / q.sum()).log()
    torch.testing.assert_close(model.ratio[:, 1], r.float())
    torch.testing.assert_close(model.ratio[:, 0], -r.float())
    grams, present = model.ngrams(ids[:1])
    assert sorted(grams[present].tolist()) == sorted(positive_sets[0])


def test_bert_classifier_reads_out_a_masked_lm() -> None:
    model = small("bert_classifier").eval()
    (ids,) = model.example_inputs(2)
    with torch.no_grad():
        chosen = torch.zeros_like(ids, dtype=torch.bool)
        chosen[0, 1] = chosen[1, 3] = True
        logits = model(ids, masked_lm=chosen)
        assert logits.shape == (2, V)
        hidden = model.encoder(ids)
        torch.testing.assert_close(logits[1], hidden[1, 3] @ model.encoder.token_embedding.weight.T)


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_is_a_one_line_error(name: str) -> None:
    model = small(name)
    if name == "bert_classifier":
        return  # any key mask is allowed there; the task always pads on the right
    for bad in (torch.zeros(2, 4, dtype=torch.long), torch.rand(2, 4), torch.ones(4, dtype=torch.long)):
        with pytest.raises(UserError) as excinfo:
            model(bad)
        assert "\n" not in str(excinfo.value)


def test_canonical_textcnn_parameter_count() -> None:
    # Kim's CNN-rand on a 10,000-word vocabulary: embeddings 300 x V, filters (h * 300 + 1) x 100 for
    # h = 3, 4, 5, output 300 x 2 + 2
    model = create_model("textcnn", vocab_size=10_000)
    expected = 10_000 * 300 + sum((h * 300 + 1) * 100 for h in (3, 4, 5)) + 300 * 2 + 2
    assert sum(p.numel() for p in model.parameters()) == expected
    assert expected == 3_360_902
