"""Sentence classification (MR): k-fold cross-validation, cross-entropy, accuracy, word-level prediction.

Models take padded word ids (B, T) (``PAD_ID`` = 0 on the right, given to them as ``pad_id``) and return logits (B, classes); each
derives its own padding mask from the ids, so a sentence's prediction does not depend on how much
padding its batch has. The task owns the folds, the vocabulary and the dev slice for early stopping.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.data.sentences import WordVocab, fold_assignment, load_sentences, pad_batch, tokenize, trim
from archzoo.data.sources import DATASETS
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, TensorPairSplits, length_buckets, model_device, register_task
from archzoo.tasks.classification import Predictions, accuracy_and_loss, check_top, confusion_matrix
from archzoo.vocab import PAD_ID, UNK_ID


@dataclass(frozen=True)
class SentenceClassificationConfig:
    dataset: str = "rt-polarity"
    num_folds: int = 10  # k-fold cross-validation (Kim 2014 on MR); the quick fixed split is fold 0
    fold: int = 0  # the test fold; the other folds are the training part
    fold_seed: int = 0  # seed of the fold assignment (fixed: every model sees the same folds)
    val_fraction: float = 0.1  # dev slice carved from the training part with val_seed (early stopping)
    val_seed: int = 0
    min_freq: int = 1  # words seen fewer times in the training part map to <unk>
    max_tokens: int = 128  # longer sentences are truncated
    max_examples: int = 0  # 0: the whole dataset; else a seeded subset of this many (quick runs, tests)
    mlm_weight: float = 0.0  # > 0: add this x a masked-LM loss on the training sentences (models with masked_lm)
    mlm_probability: float = 0.15  # BERT's masking rate: of the chosen tokens 80% <unk>, 10% random, 10% kept
    mlm_pretrain_epochs: int = 0  # the first N epochs train the masked-LM loss alone (pre-training), then fine-tune
    vocab: tuple[str, ...] = ()  # resolved from the training part when a run starts and saved with it

    def __post_init__(self) -> None:
        if self.num_folds < 2 or not 0 <= self.fold < self.num_folds:
            raise UserError(f"data.fold must be in [0, data.num_folds) with num_folds >= 2, got fold={self.fold}, "
                            f"num_folds={self.num_folds}")
        if not 0 < self.val_fraction < 0.5:
            raise UserError(f"data.val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.min_freq < 1 or self.max_tokens < 1 or self.max_examples < 0:
            raise UserError("data.min_freq and data.max_tokens must be >= 1, data.max_examples >= 0")
        if self.mlm_weight < 0 or not 0 < self.mlm_probability < 1 or self.mlm_pretrain_epochs < 0:
            raise UserError("data.mlm_weight and data.mlm_pretrain_epochs must be >= 0 and data.mlm_probability "
                            "in (0, 1)")

    @property
    def uses_mlm(self) -> bool:
        return bool(self.mlm_weight or self.mlm_pretrain_epochs)


def masking_draw(seed: int, batch: int, width: int, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The random numbers of one global batch's masking, from ``seed`` alone (a shard takes its rows):
    uniforms (3, B, T) that choose, corrupt and replace, and random words (B, T) in [UNK_ID + 1, V)."""
    generator = torch.Generator().manual_seed(seed)
    draw = torch.rand(3, batch, width, generator=generator)
    return draw, torch.randint(UNK_ID + 1, vocab_size, (batch, width), generator=generator)


def mask_tokens(ids: torch.Tensor, draw: torch.Tensor, words: torch.Tensor,
                probability: float) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: choose ``probability`` of the real tokens (never padding); of those 80% become
    <unk> (the mask token), 10% a random word, 10% stay. Returns (corrupted ids, chosen) (B, T).

    Reference: Devlin et al. 2019, arXiv:1810.04805, Sec. 3.1 (Task #1) and Appendix A.1.
    """
    chosen = (ids != PAD_ID) & (draw[0] < probability)
    corrupted = torch.where(chosen & (draw[1] < 0.8), torch.full_like(ids, UNK_ID), ids)
    return torch.where(chosen & (draw[1] >= 0.8) & (draw[2] < 0.5), words, corrupted), chosen


def masked_lm_logits(model: nn.Module, ids: torch.Tensor, draw: torch.Tensor, words: torch.Tensor,
                     probability: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, V), original ids (N,)) at the N chosen positions of a corrupted batch; at least one
    position is chosen, so a loss over them is defined."""
    corrupted, chosen = mask_tokens(ids, draw, words, probability)
    chosen[0, 0] |= not chosen.any()
    return model(corrupted, masked_lm=chosen), ids[chosen]


def masked_lm_loss(model: nn.Module, ids: torch.Tensor, draw: torch.Tensor, words: torch.Tensor,
                   probability: float) -> torch.Tensor:
    """BERT's masked-LM loss: cross-entropy of the originals at the chosen positions (``mask_tokens``)."""
    logits, targets = masked_lm_logits(model, ids, draw, words, probability)
    return F.cross_entropy(logits.float(), targets)


def has_masked_lm(model: nn.Module) -> bool:
    """Whether the model can read its encoder out as a masked LM (``forward(..., masked_lm=...)``)."""
    return "masked_lm" in inspect.signature(model.forward).parameters


class WordSplits(TensorPairSplits):
    """For tasks over word ids whose ``_load`` builds the WordVocab ``self.vocab`` (unless the config gives
    one) and fills ``self._splits`` train, val and test on first use; the vocabulary is saved in the run's
    config (``cfg.vocab``)."""

    vocab: WordVocab | None

    def split(self, name: str) -> tuple[torch.Tensor, ...]:
        if name not in ("train", "val", "test"):
            raise UserError(f"no {name!r} split; choose one of train, val, test")
        if not self._splits:
            self._load()
        return self._splits[name]

    def has_split(self, name: str) -> bool:
        return name in ("train", "val", "test")

    def loaded_vocab(self) -> WordVocab:
        if self.vocab is None:
            self._load()
        assert self.vocab is not None
        return self.vocab

    def resolved_config(self) -> Any:
        return replace(self.cfg, vocab=tuple(self.loaded_vocab().words))


@register_task("sentence_classification")
class SentenceClassification(WordSplits, Task):
    Config = SentenceClassificationConfig
    primary_metric = "accuracy"
    higher_is_better = True
    verbs = ("predict",)

    def __init__(self, cfg: SentenceClassificationConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        spec = DATASETS.get(cfg.dataset)
        if spec.meta.get("format") != "sentences":
            load_sentences(cfg.dataset, data_dir)  # raises the one-line error naming the sentence datasets
        self.classes: list[str] = list(spec.meta["classes"])  # type: ignore[arg-type]
        self.vocab: WordVocab | None = WordVocab(cfg.vocab) if cfg.vocab else None
        self.device = torch.device("cpu")
        self.epoch = 0  # the training epoch, set by epoch_order (decides pre-training vs fine-tuning)
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- data ----------------------------------------------------------------------------------
    def partition(self) -> tuple[list[list[str]], torch.Tensor, dict[str, torch.Tensor]]:
        """(tokens of every sentence, labels, {train, val, test: sentence indices}): the seeded folds, the
        test fold ``cfg.fold`` and the dev slice carved from the other folds. Unlabelled pre-training on
        MR reads the ``train`` part from here, so it never sees the test fold (tasks/masked_lm.py)."""
        cfg = self.cfg
        sentences, labels, _ = load_sentences(cfg.dataset, self.data_dir)
        if cfg.max_examples:
            keep = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(cfg.fold_seed))
            keep = keep[:cfg.max_examples].sort().values
            sentences, labels = [sentences[i] for i in keep], labels[keep]
        if len(sentences) < cfg.num_folds * 2:
            raise UserError(f"{len(sentences)} sentences are too few for {cfg.num_folds}-fold cross-validation; "
                            "raise data.max_examples")
        tokens = [tokenize(s) or [s.lower()] for s in sentences]  # a sentence of symbols only stays one token
        folds = fold_assignment(len(tokens), cfg.num_folds, cfg.fold_seed)
        test_idx = (folds == cfg.fold).nonzero().flatten()
        rest = (folds != cfg.fold).nonzero().flatten()
        order = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(cfg.val_seed))]
        n_val = max(1, round(cfg.val_fraction * len(rest)))
        parts = {"train": order[n_val:].sort().values, "val": order[:n_val].sort().values, "test": test_idx}
        return tokens, labels, parts

    def _load(self) -> None:
        """Partition the dataset, build the vocabulary from the training part only (the dev slice and the
        test fold never shape it) unless the config gives one, and encode every split."""
        cfg = self.cfg
        tokens, labels, parts = self.partition()
        if self.vocab is None:
            self.vocab = WordVocab.build((tokens[i] for i in parts["train"].tolist()), cfg.min_freq)
        for name, idx in parts.items():
            rows = [self.vocab.encode(tokens[i]) for i in idx.tolist()]
            self._splits[name] = (pad_batch(rows, cfg.max_tokens).to(self.device), labels[idx].to(self.device))

    def encode(self, sentences: list[str]) -> torch.Tensor:
        """Padded ids (B, T) of user sentences; an empty sentence, or one of unknown words only, raises
        one line naming it and the fix."""
        assert self.vocab is not None, "the vocabulary is resolved when a run starts"
        rows = []
        for sentence in sentences:
            tokens = tokenize(sentence)
            if not tokens:
                raise UserError(f"sentence {sentence!r} has no words; give a sentence such as \"the film is a delight\"")
            ids = self.vocab.encode(tokens)
            if all(i == UNK_ID for i in ids):
                raise UserError(f"no word of {sentence!r} is in the model's vocabulary ({len(self.vocab):,} words "
                                f"from the {self.cfg.dataset} training sentences); rephrase it in plain English "
                                "words, e.g. \"the film is a delight\"")
            rows.append(ids)
        return pad_batch(rows, self.cfg.max_tokens)

    # -- the trainer contract --------------------------------------------------------------------
    def model_args(self) -> dict[str, Any]:
        return {"vocab_size": len(self.loaded_vocab()), "num_classes": len(self.classes), "pad_id": PAD_ID}

    def init_model(self, model: nn.Module) -> None:
        """Data-dependent initialisation: a model with ``fit_counts(ids, labels)`` (NBSVM's log-count
        ratios) reads the training part once."""
        if self.cfg.uses_mlm and not has_masked_lm(model):
            raise UserError(f"data.mlm_weight and data.mlm_pretrain_epochs need a model with a masked-LM head "
                            f"(bert_classifier), not {type(model).__name__}; set both to 0")
        fit = getattr(model, "fit_counts", None)
        if fit is not None:
            fit(*self.split("train"))

    def epoch_order(self, epoch: int, seed: int, batch_size: int) -> torch.Tensor:
        """A random order in which each run of ``batch_size`` sentences has similar lengths (a bucket
        iterator): shuffle, sort chunks of 50 batches by length, then shuffle the batches. Batches pad
        less, and the order still depends only on (seed, epoch). The trainer asks at the start of every
        epoch (a resumed run too), which is how the task knows whether it is pre-training."""
        self.epoch = epoch
        return length_buckets((self.split("train")[0] != PAD_ID).sum(1), batch_size, seed, epoch)

    @property
    def pretraining(self) -> bool:
        """Within the first ``mlm_pretrain_epochs``: BERT's pre-training (Devlin et al. 2019, Sec. 3.1),
        the masked-LM loss alone on the training sentences, before fine-tuning on the labels
        (here in-domain text only, as in Sun et al. 2019's within-task pre-training, arXiv:1905.05583)."""
        return self.epoch < self.cfg.mlm_pretrain_epochs

    def is_better(self, new: dict[str, float], best: dict[str, float]) -> bool:
        """While pre-training the classification head is untrained: each evaluation counts as the best so
        far, so early stopping and the best checkpoint start with fine-tuning."""
        return self.pretraining or super().is_better(new, best)

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, ...]:
        ids, labels = self.split("train")
        mine = indices.to(self.device)[shard]
        batch = trim(ids[mine])
        if not self.cfg.uses_mlm:
            return batch, labels[mine]
        draw, words = masking_draw(seed, len(indices), ids.shape[1], len(self.vocab or ()))
        return batch, labels[mine], *(t[..., shard, :batch.shape[1]].to(self.device) for t in (draw, words))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        ids, labels = batch[:2]
        if self.pretraining:
            return masked_lm_loss(model, ids, *batch[2:], self.cfg.mlm_probability)
        loss = F.cross_entropy(model(ids).float(), labels)
        if self.cfg.mlm_weight:
            loss = loss + self.cfg.mlm_weight * masked_lm_loss(model, ids, *batch[2:], self.cfg.mlm_probability)
        return loss

    @torch.no_grad()
    def logits(self, model: nn.Module, ids: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Logits for padded ``ids`` in batches, each cut to its longest sentence (float32)."""
        model.eval()
        return torch.cat([model(trim(ids[i:i + batch_size])).float() for i in range(0, len(ids), batch_size)])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        ids, labels = self.split(split)
        return accuracy_and_loss(self.logits(model, ids, batch_size), labels)

    @torch.no_grad()
    def predict(self, model: nn.Module, sentences: str | list[str], top: int = 1, batch_size: int = 256) -> Predictions:
        """Label probabilities of user sentences (one string or a list of them), tokenized and looked up
        in the run's vocabulary like the training sentences.

        Shapes: sentences (N) -> probs (N, K).
        """
        top = check_top(top)
        items = [sentences] if isinstance(sentences, str) else sentences
        if not isinstance(items, list | tuple) or not items or not all(isinstance(t, str) for t in items):
            raise UserError(f"predict takes a sentence or a list of sentences (strings), got {type(sentences).__name__}"
                            + (" (empty)" if isinstance(items, list | tuple) and not items else ""))
        ids = self.encode(list(items)).to(model_device(model))
        return Predictions(list(items), self.classes, self.logits(model, ids, batch_size).softmax(-1).cpu(), top)

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        lines = [f"{self.cfg.dataset} fold {result['fold']} of {result['num_folds']} ({result['examples']} test "
                 f"sentences): accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}", "per-class accuracy:"]
        return lines + [f"  {name:>12}  {acc:.4f}" for name, acc in result["per_class_accuracy"].items()]

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        from archzoo.viz.plots import plot_confusion

        ids, labels = self.split("test")
        logits = self.logits(model, ids, batch_size)
        pred = logits.argmax(1)
        confusion, per_class = confusion_matrix(labels, pred, len(self.classes))
        plot_confusion(confusion, self.classes, out_dir / "confusion.png")
        result = {
            "split": "test", "fold": self.cfg.fold, "num_folds": self.cfg.num_folds, "examples": len(labels),
            "loss": F.cross_entropy(logits, labels).item(),
            "accuracy": (pred == labels).double().mean().item(),
            "per_class_accuracy": dict(zip(self.classes, per_class, strict=True)),
            "confusion": confusion.tolist(),
        }
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result
