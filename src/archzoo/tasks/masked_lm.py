"""Masked-LM pre-training on unlabelled English sentences (BERT's first stage), in MR's words.

The corpus pools the English side of Multi30K's training captions, the lines of tinyshakespeare and
the *training part* of one MR fold: the MR split is computed by the sentence-classification task with
the same fold settings, so the test fold and the dev slice of that fold never reach pre-training. Every
sentence is tokenized with Kim's tokenizer (the one sentence classification uses), and the vocabulary
built here is the one a fine-tuning run takes (``data.vocab``), so both stages share their word ids.

Reference: Devlin, Chang, Lee & Toutanova 2019, "BERT", arXiv:1810.04805, Sec. 3.1 (masked LM) and
    Appendix A.1 (the 80/10/10 corruption).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archzoo.data.sentences import WordVocab, pad_batch, tokenize, trim
from archzoo.data.text import load_text
from archzoo.data.translation import load_parallel
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, length_buckets, register_task
from archzoo.tasks.sentence_classification import (
    SentenceClassification,
    SentenceClassificationConfig,
    WordSplits,
    has_masked_lm,
    masked_lm_logits,
    masked_lm_loss,
    masking_draw,
)
from archzoo.vocab import PAD_ID

EVAL_SEED = 12345  # the masking of the held-out sentences: the same draw at every evaluation


@dataclass(frozen=True)
class MaskedLMConfig:
    corpora: tuple[str, ...] = ("multi30k", "tinyshakespeare", "rt-polarity")
    # the MR split (the sentence-classification task's fields of the same names): only its training part is read
    sentence_dataset: str = "rt-polarity"
    num_folds: int = 10
    fold: int = 0
    fold_seed: int = 0
    val_fraction: float = 0.1
    val_seed: int = 0
    max_examples: int = 0
    max_sentences: int = 0  # 0: every sentence of each corpus; else a seeded subset of this many per corpus
    heldout_sentences: int = 500  # per split: the val and the test sentences, drawn from the pooled corpus
    max_tokens: int = 64  # longer sentences are truncated
    min_freq: int = 1
    mlm_probability: float = 0.15
    vocab: tuple[str, ...] = ()  # resolved from the training sentences when a run starts and saved with it

    def __post_init__(self) -> None:
        unknown = [c for c in self.corpora if c not in CORPORA]
        if not self.corpora or unknown:
            raise UserError(f"data.corpora must name some of {', '.join(CORPORA)}, got {list(self.corpora)}")
        if self.max_sentences < 0 or self.heldout_sentences < 1 or self.max_tokens < 2 or self.min_freq < 1:
            raise UserError("data.max_sentences must be >= 0, data.heldout_sentences and data.min_freq >= 1, "
                            "data.max_tokens >= 2")
        if not 0 < self.mlm_probability < 1:
            raise UserError(f"data.mlm_probability must be in (0, 1), got {self.mlm_probability}")
        self.sentence_split()  # the MR fields are checked where they live

    def sentence_split(self) -> SentenceClassificationConfig:
        """The sentence-classification config whose training part this corpus reads."""
        return SentenceClassificationConfig(dataset=self.sentence_dataset, num_folds=self.num_folds, fold=self.fold,
                                            fold_seed=self.fold_seed, val_fraction=self.val_fraction,
                                            val_seed=self.val_seed, max_examples=self.max_examples)


def multi30k_english(cfg: MaskedLMConfig, data_dir: str | Path | None) -> list[str]:
    """The English side of Multi30K's 29,000 training captions."""
    return load_parallel("multi30k", "de", "en", "train", data_dir)[1]


def shakespeare_lines(cfg: MaskedLMConfig, data_dir: str | Path | None) -> list[str]:
    """tinyshakespeare's non-empty lines, without the speaker headings ("ROMEO:")."""
    return [line for line in (raw.strip() for raw in load_text("tinyshakespeare", data_dir).split("\n"))
            if line and not line.endswith(":")]


def mr_training_part(cfg: MaskedLMConfig, data_dir: str | Path | None) -> list[list[str]]:
    """The tokens of the training part of MR's fold ``cfg.fold`` (neither its test fold nor its dev slice)."""
    tokens, _, parts = SentenceClassification(cfg.sentence_split(), data_dir).partition()
    return [tokens[i] for i in parts["train"].tolist()]


CORPORA: dict[str, Callable[[MaskedLMConfig, str | Path | None], list[Any]]] = {
    "multi30k": multi30k_english, "tinyshakespeare": shakespeare_lines, "rt-polarity": mr_training_part}


def pretraining_corpus(cfg: MaskedLMConfig, data_dir: str | Path | None = None) -> list[list[str]]:
    """The tokenized sentences of every corpus in ``cfg.corpora`` (each a seeded subset of ``max_sentences``
    when that is set), in corpus order."""
    out: list[list[str]] = []
    for name in cfg.corpora:
        items = CORPORA[name](cfg, data_dir)
        sentences = [s if isinstance(s, list) else tokenize(s) for s in items]
        sentences = [s for s in sentences if s]
        if cfg.max_sentences and len(sentences) > cfg.max_sentences:
            keep = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(cfg.fold_seed))
            sentences = [sentences[i] for i in keep[:cfg.max_sentences].sort().values.tolist()]
        out += sentences
    return out


@register_task("masked_lm")
class MaskedLM(WordSplits, Task):
    """Pre-train a model with a ``masked_lm`` read-out (``bert_classifier``) on the pooled corpus; metrics:
    masked-LM loss (nats per chosen token) and the accuracy of predicting the original token there."""

    Config = MaskedLMConfig
    primary_metric = "loss"
    higher_is_better = False

    def __init__(self, cfg: MaskedLMConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        self.vocab: WordVocab | None = WordVocab(cfg.vocab) if cfg.vocab else None
        self.device = torch.device("cpu")
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def verify_data(self) -> None:
        from archzoo.data.sources import DATASETS, locate

        for name in self.cfg.corpora:
            locate(DATASETS.get(self.cfg.sentence_dataset if name == "rt-polarity" else name), self.data_dir)

    def _load(self) -> None:
        """Pool the corpora, hold out the val and test sentences at random, build the vocabulary from the
        training sentences and encode (ids, and each sentence's length as the second tensor)."""
        cfg = self.cfg
        sentences = pretraining_corpus(cfg, self.data_dir)
        if len(sentences) <= 3 * cfg.heldout_sentences:
            raise UserError(f"{len(sentences)} pre-training sentences are too few to hold out "
                            f"{cfg.heldout_sentences} for val and for test; lower data.heldout_sentences")
        order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(cfg.fold_seed)).tolist()
        n = cfg.heldout_sentences
        parts = {"val": order[:n], "test": order[n:2 * n], "train": sorted(order[2 * n:])}
        if self.vocab is None:
            self.vocab = WordVocab.build((sentences[i] for i in parts["train"]), cfg.min_freq)
        for name, idx in parts.items():
            ids = pad_batch([self.vocab.encode(sentences[i]) for i in idx], cfg.max_tokens)
            self._splits[name] = (ids.to(self.device), (ids != PAD_ID).sum(1).to(self.device))

    def model_args(self) -> dict[str, Any]:
        return {"vocab_size": len(self.loaded_vocab()), "pad_id": PAD_ID}

    def init_model(self, model: nn.Module) -> None:
        if not has_masked_lm(model):
            raise UserError(f"the masked_lm task needs a model with a masked-LM read-out (bert_classifier), "
                            f"not {type(model).__name__}")

    def epoch_order(self, epoch: int, seed: int, batch_size: int) -> torch.Tensor:
        return length_buckets(self.split("train")[1], batch_size, seed, epoch)

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, ...]:
        ids = self.split("train")[0]
        batch = trim(ids[indices.to(self.device)[shard]])
        draw, words = masking_draw(seed, len(indices), ids.shape[1], len(self.vocab or ()))
        return batch, *(t[..., shard, :batch.shape[1]].to(self.device) for t in (draw, words))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return masked_lm_loss(model, *batch, self.cfg.mlm_probability)

    @torch.no_grad()
    def masked_scores(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        """Masked-LM loss, accuracy and the number of masked tokens on a held-out split, each batch
        masked by a fixed draw (the same at every evaluation)."""
        model.eval()
        ids = self.split(split)[0]
        total, correct, count = 0.0, 0, 0
        for b, start in enumerate(range(0, len(ids), batch_size)):
            batch = trim(ids[start:start + batch_size])
            draw, words = masking_draw(EVAL_SEED + b, len(batch), batch.shape[1], len(self.vocab or ()))
            logits, targets = masked_lm_logits(model, batch, draw.to(batch.device), words.to(batch.device),
                                               self.cfg.mlm_probability)
            logits = logits.float()
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            correct += int((logits.argmax(1) == targets).sum())
            count += len(targets)
        return {"loss": total / count, "accuracy": correct / count, "masked_tokens": count}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        scores = self.masked_scores(model, split, batch_size)
        return {"loss": scores["loss"], "accuracy": scores["accuracy"]}

    def unigram_loss(self, split: str) -> float:
        """Nats per token of the training words' unigram frequencies (add-one smoothed) on a split's real
        tokens: the loss of a masked LM that ignores the context, which a useful one must beat."""
        counts = torch.bincount(self.split("train")[0].flatten().cpu(), minlength=len(self.vocab or ())).double() + 1
        counts[PAD_ID] = 0
        ids = self.split(split)[0].cpu()
        return -(counts / counts.sum()).log()[ids[ids != PAD_ID]].mean().item()

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        return [f"masked LM on {result['sentences']} held-out sentences ({result['masked_tokens']} masked tokens): "
                f"loss {result['loss']:.4f} nats (unigram guess {result['unigram_loss']:.4f}), accuracy "
                f"{result['accuracy']:.4f}"]

    @torch.no_grad()
    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        result = {"split": "test", "sentences": len(self.split("test")[0]), "corpora": list(self.cfg.corpora),
                  "train_sentences": len(self.split("train")[0]), "vocab_size": len(self.vocab or ()),
                  "unigram_loss": self.unigram_loss("test"), **self.masked_scores(model, "test", batch_size)}
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        return result
