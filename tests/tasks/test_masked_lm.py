"""The masked-LM pre-training task: BERT's corruption, the pooled corpus (never an MR test fold), the
scaled read-out and a short training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.tasks.masked_lm import MaskedLM, MaskedLMConfig, pretraining_corpus
from archzoo.tasks.sentence_classification import (
    SentenceClassification,
    SentenceClassificationConfig,
    mask_tokens,
    masking_draw,
)
from archzoo.vocab import PAD_ID, UNK_ID
from helpers import SHARED_DATA, needs_mr

needs_corpora = pytest.mark.skipif(not all((SHARED_DATA / d).is_dir() for d in ("rt-polarity", "multi30k",
                                                                                 "tinyshakespeare")),
                                   reason="../shared/data: rt-polarity, multi30k or tinyshakespeare not staged")


def test_masking_never_touches_padding_and_keeps_berts_proportions() -> None:
    lengths = torch.randint(1, 40, (400,))
    ids = torch.randint(UNK_ID + 1, 500, (400, 40))
    ids[torch.arange(40)[None, :] >= lengths[:, None]] = PAD_ID
    draw, words = masking_draw(7, 400, 40, 500)
    corrupted, chosen = mask_tokens(ids, draw, words, 0.15)
    pad = ids == PAD_ID
    assert not chosen[pad].any() and (corrupted[pad] == PAD_ID).all()  # padding is never chosen or changed
    assert (corrupted[~chosen] == ids[~chosen]).all()  # only chosen tokens change
    assert (corrupted != PAD_ID)[~pad].all()  # a real token never becomes padding
    assert abs(chosen.sum().item() / (~pad).sum().item() - 0.15) < 0.01
    masked = (corrupted[chosen] == UNK_ID).float().mean().item()
    random = ((corrupted[chosen] != UNK_ID) & (corrupted[chosen] != ids[chosen])).float().mean().item()
    assert abs(masked - 0.8) < 0.03 and abs(random - 0.1) < 0.03  # and about 10% stay (some random words hit)


def test_masking_draw_depends_on_the_seed_alone() -> None:
    a, b = masking_draw(3, 4, 5, 100), masking_draw(3, 4, 5, 100)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], masking_draw(4, 4, 5, 100)[0])
    assert a[1].min() > UNK_ID  # a random replacement is a real word, never padding or <unk>


@needs_mr
@pytest.mark.parametrize("fold", [0, 7])
def test_the_corpus_holds_the_training_part_and_never_the_test_fold(fold: int) -> None:
    """The MR corpus of fold k is exactly the training part of the sentence-classification run of fold k:
    no sentence of its test fold or dev slice (unless the same words also occur in the training part)."""
    cfg = MaskedLMConfig(corpora=("rt-polarity",), fold=fold)
    corpus = pretraining_corpus(cfg, None)
    tokens, _, parts = SentenceClassification(SentenceClassificationConfig(fold=fold)).partition()
    assert corpus == [tokens[i] for i in parts["train"].tolist()]
    training = {tuple(t) for t in corpus}
    held_out = {tuple(tokens[i]) for name in ("test", "val") for i in parts[name].tolist()} - \
        {tuple(tokens[i]) for i in parts["train"].tolist()}
    assert len(held_out) > 900 and not training & held_out


@needs_corpora
def test_pooled_corpus_sizes_and_shared_vocabulary() -> None:
    cfg = MaskedLMConfig(max_sentences=300, heldout_sentences=50)
    corpus = pretraining_corpus(cfg, None)
    assert len(corpus) == 900 and all(corpus)
    task = MaskedLM(cfg)
    resolved = task.resolved_config()
    assert len(task.split("train")[0]) == 800 and resolved.vocab[:2] == ("<pad>", "<unk>")
    # the vocabulary is every word of the training sentences, so a fine-tuning run with it encodes MR alike
    assert set(resolved.vocab[2:]) == {w for i in sorted(set(range(900)) - set(
        torch.randperm(900, generator=torch.Generator().manual_seed(0))[:100].tolist())) for w in corpus[i]}


def test_bad_config_is_one_line() -> None:
    with pytest.raises(UserError, match="data.corpora"):
        MaskedLMConfig(corpora=("wikipedia",))
    with pytest.raises(UserError, match="mlm_probability"):
        MaskedLMConfig(mlm_probability=1.5)
    with pytest.raises(UserError, match="data.fold"):
        MaskedLMConfig(fold=10)
    with pytest.raises(UserError, match="mlm_head"):
        create_model("bert_classifier", mlm_head="dense")


def test_scaled_read_out_starts_near_a_uniform_guess() -> None:
    """The tied read-out h E^T starts with logits of std about sqrt(D); scaled by 1/sqrt(D) about 1."""
    torch.manual_seed(0)
    tied = create_model("bert_classifier", vocab_size=5000, mlm_head="tied").eval()
    scaled = create_model("bert_classifier", vocab_size=5000, mlm_head="scaled").eval()
    scaled.load_state_dict(tied.state_dict())  # the same parameters: the head adds none
    ids = torch.randint(2, 5000, (4, 12))
    where = torch.ones_like(ids, dtype=torch.bool)
    assert 8 < tied(ids, masked_lm=where).std() < 16 and 0.7 < scaled(ids, masked_lm=where).std() < 1.4
    assert torch.equal(tied(ids), scaled(ids))  # classification is unchanged


@needs_corpora
def test_a_short_pretraining_run_learns(tmp_path: Path) -> None:
    from archzoo.lab.runner import run_training

    config = {"task": "masked_lm", "model": {"name": "bert_classifier", "args": {
                  "d_model": 32, "num_layers": 1, "num_heads": 2, "dim_feedforward": 64, "mlm_head": "scaled"}},
              "data": {"max_sentences": 400, "heldout_sentences": 60, "max_examples": 600},
              "train": {"epochs": 3, "batch_size": 32, "lr": 3e-3, "optimizer": "adamw", "eval_batch_size": 100}}
    result = run_training(config, tmp_path / "run")
    curve = [r["loss"] for r in result.history if r.get("split") == "val"]
    assert len(curve) == 3 and curve[-1] < curve[0] - 0.5
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["sentences"] == 60 and report["masked_tokens"] > 0 and report["unigram_loss"] > 0
