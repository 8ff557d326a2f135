"""The sentence-classification task (tasks/sentence_classification.py) on real MR data: folds and dev
slice, the vocabulary from the training part only, bucketed batch order, learning, masked LM, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.data.sentences import fold_assignment, load_sentences, tokenize
from archzoo.errors import UserError
from archzoo.tasks.sentence_classification import SentenceClassification, SentenceClassificationConfig
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer
from archzoo.vocab import PAD_ID, UNK_ID
from helpers import needs_mr

pytestmark = needs_mr
FAST = ["data.max_examples=1500", "train.batch_size=50", "train.log_every_steps=5", "train.eval_batch_size=500",
        "train.compile=false"]  # the preset compiles where it can; these few steps would spend their time compiling


def task(**kwargs: object) -> SentenceClassification:
    return SentenceClassification(SentenceClassificationConfig(**kwargs))  # type: ignore[arg-type]


def test_folds_dev_and_test_are_disjoint_and_the_test_fold_is_the_assignment() -> None:
    t = task(fold=3)
    sizes = {name: len(t.split(name)[1]) for name in ("train", "val", "test")}
    assert sum(sizes.values()) == 10_662
    assert sizes["test"] == int((fold_assignment(10_662, 10, 0) == 3).sum())
    assert abs(sizes["val"] - 0.1 * (10_662 - sizes["test"])) <= 1
    # the test fold's sentences are exactly those assigned to fold 3, and no training sentence is among them
    sentences, labels, _ = load_sentences("rt-polarity")
    folds = fold_assignment(len(sentences), 10, 0)
    assert torch.equal(t.split("test")[1].cpu(), labels[folds == 3])
    assert t.vocab is not None
    first = [i for i in (folds == 3).nonzero().flatten().tolist()][0]
    expected = t.vocab.encode(tokenize(sentences[first]))
    assert t.split("test")[0][0, :len(expected)].tolist() == expected


def test_vocabulary_comes_from_the_training_part_only() -> None:
    t = task(fold=0, max_examples=800)
    assert t.vocab is None  # read lazily: predicting needs only the saved vocabulary
    train_ids = t.split("train")[0]
    assert t.vocab is not None
    seen = set(train_ids[train_ids > UNK_ID].unique().tolist())
    assert seen == set(range(2, len(t.vocab)))  # every vocabulary word occurs in training
    test_ids = t.split("test")[0]
    assert (test_ids == UNK_ID).any()  # words met only in the test fold are unknown
    cfg = t.resolved_config()
    assert cfg.vocab == tuple(t.vocab.words) and t.model_args() == {"vocab_size": len(t.vocab), "num_classes": 2,
                                                                   "pad_id": PAD_ID}
    rebuilt = SentenceClassification(cfg)  # a saved run's config rebuilds the vocabulary with no data
    assert rebuilt.vocab is not None and rebuilt.vocab.words == t.vocab.words
    assert torch.equal(rebuilt.encode(["the film is a delight"]), t.encode(["the film is a delight"]))


def test_min_freq_shrinks_the_vocabulary() -> None:
    assert len(task(min_freq=2, max_examples=800).resolved_config().vocab) < len(
        task(max_examples=800).resolved_config().vocab)


def test_epoch_order_is_a_deterministic_permutation_of_similar_length_batches() -> None:
    t = task(max_examples=3000)
    n = t.num_train_examples()
    order = t.epoch_order(0, seed=1, batch_size=50)
    assert sorted(order.tolist()) == list(range(n))
    assert torch.equal(order, t.epoch_order(0, seed=1, batch_size=50))
    assert not torch.equal(order, t.epoch_order(1, seed=1, batch_size=50))
    lengths = (t.split("train")[0] != PAD_ID).sum(1)
    full = n // 50 * 50
    bucketed = lengths[order[:full]].view(-1, 50).float()
    shuffled = lengths[torch.randperm(n)[:full]].view(-1, 50).float()
    # batches are far more uniform in length than random ones, so they pad far less
    assert bucketed.std(1).mean() < 0.5 * shuffled.std(1).mean()
    ids, labels = t.train_batch(order[:50], slice(0, 50), seed=0)
    assert ids.shape[0] == 50 and (ids[:, 0] != PAD_ID).all() and (ids[:, -1] != PAD_ID).any()


def test_loss_falls_on_real_mr_data(tmp_path: Path) -> None:
    cfg = resolve_config("mr-textcnn", [*FAST, "model.args.embedding_dim=16", "model.args.num_maps=16",
                                        "train.max_steps=72", "train.lr=1e-2"])
    result = Trainer(cfg, tmp_path / "run", progress=False, verbose=False).fit()
    losses = [r["loss"] for r in result.history if r["split"] == "train"]
    assert losses[-1] < 0.85 * losses[0], losses
    assert result.test is not None and result.test["accuracy"] > 0.55 and result.test["fold"] == 0
    assert (tmp_path / "run" / "eval.json").is_file() and (tmp_path / "run" / "confusion.png").is_file()


def test_masked_lm_loss_trains_bert_and_needs_a_masked_lm_head(tmp_path: Path) -> None:
    base = [*FAST, "model.args.d_model=32", "model.args.dim_feedforward=64", "model.args.num_layers=1",
            "train.max_steps=2", "data.mlm_weight=1.0"]
    result = Trainer(resolve_config("mr-bert", base), tmp_path / "bert", progress=False, verbose=False).fit(
        dry_run=True)
    # classification loss (about log 2) plus a masked-LM loss over the vocabulary (about log V)
    assert result.test is not None and result.test["train_loss"] > 3.0
    with pytest.raises(UserError, match="masked-LM head"):
        Trainer(resolve_config("mr-textcnn", [*FAST, "data.mlm_weight=1.0"]), tmp_path / "cnn", progress=False)


def test_user_sentences_empty_or_all_unknown_are_one_line_errors() -> None:
    t = task(max_examples=800)
    t.split("train")
    assert t.encode(["the film is a delight", "a"]).shape[0] == 2
    with pytest.raises(UserError, match="has no words") as excinfo:
        t.encode(["  ...  "])
    assert "\n" not in str(excinfo.value)
    with pytest.raises(UserError, match="no word of 'zzqx qqzz' is in the model's vocabulary"):
        t.encode(["zzqx qqzz"])


def test_bad_config_is_a_one_line_error() -> None:
    for kwargs in ({"fold": 10}, {"num_folds": 1}, {"val_fraction": 0.0}, {"min_freq": 0}):
        with pytest.raises(UserError):
            SentenceClassificationConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="not a sentence-classification dataset"):
        task(dataset="mnist")


@needs_mr
def test_masked_lm_pretraining_epochs_leave_the_classifier_head_alone_then_fine_tune(tmp_path: Path) -> None:
    """With data.mlm_pretrain_epochs=1 the first epoch trains the encoder on the masked-LM loss only (the
    classification head gets no gradient), and the next epoch fine-tunes the head."""
    small = [*FAST, "data.max_examples=600", "model.args.d_model=32", "model.args.dim_feedforward=64",
             "model.args.num_layers=1", "train.epochs=2", "train.warmup_steps=0", "data.mlm_pretrain_epochs=1"]
    trainer = Trainer(resolve_config("mr-bert", small), tmp_path / "bert", progress=False, verbose=False)
    head = {k: v.clone() for k, v in trainer.model.state_dict().items() if k.startswith("classifier")}
    encoder = trainer.model.encoder.token_embedding.weight.detach().clone()
    snapshots = []

    def snapshot(t: Trainer) -> None:
        if t.step % t.steps_per_epoch == 0:
            snapshots.append(({k: v.clone() for k, v in t.model.state_dict().items() if k.startswith("classifier")},
                              t.model.encoder.token_embedding.weight.detach().clone()))

    trainer.on_step = snapshot
    trainer.fit()
    (head_1, encoder_1), (head_2, _) = snapshots
    assert head and all(torch.equal(head[k], head_1[k]) for k in head)  # pre-training: the head is untouched
    assert not torch.equal(encoder, encoder_1)  # ... while the encoder learns
    assert any(not torch.equal(head_1[k], head_2[k]) for k in head)  # fine-tuning trains the head
    with pytest.raises(UserError, match="masked-LM head"):
        Trainer(resolve_config("mr-textcnn", [*FAST, "data.mlm_pretrain_epochs=1"]), tmp_path / "cnn", progress=False)
