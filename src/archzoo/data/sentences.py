"""Labelled sentences for sentence classification: reading MR, Kim's tokenizer, a word vocabulary,
the seeded 10-fold assignment and padded batches.

MR (rt-polarity) is two Latin-1 files of one sentence per line; the bytes contain 0x85, which
``str.splitlines`` would treat as a line break, so lines are split on ``b"\\n"`` only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from archzoo.data.sources import DATASETS, locate
from archzoo.errors import UserError
from archzoo.vocab import PAD, PAD_ID, UNK, UNK_ID

# Kim 2014's clean_str (yoonkim/CNN_sentence, process_data.py): keep letters, digits and a little
# punctuation, split off clitics and punctuation, lower-case. (Kim's code writes "\(" and "\)" into the
# text by mistake; here the brackets are plain tokens.)
_DROP = re.compile(r"[^A-Za-z0-9(),!?'`]")
_CLITICS = re.compile(r"('s|'ve|n't|'re|'d|'ll)")
_PUNCT = re.compile(r"([,!?()])")


def tokenize(text: str) -> list[str]:
    """Kim's ``clean_str`` as a list of tokens: "It's a delight!" -> ["it", "'s", "a", "delight", "!"]."""
    text = _PUNCT.sub(r" \1 ", _CLITICS.sub(r" \1", _DROP.sub(" ", text)))
    return text.lower().split()


def read_lines(path: Path, encoding: str = "latin-1") -> list[str]:
    """Non-empty lines of a file split on ``b"\\n"`` only (MR holds 0x85 bytes, NEL in Latin-1)."""
    return [line.decode(encoding).strip() for line in path.read_bytes().split(b"\n") if line.strip()]


def load_sentences(dataset: str, data_dir: str | Path | None = None) -> tuple[list[str], torch.Tensor, list[str]]:
    """(sentences, labels (N,), class names) of a sentence dataset, checksum-verified."""
    spec = DATASETS.get(dataset)
    if spec.meta.get("format") != "sentences":
        names = [n for n in DATASETS.names() if DATASETS.get(n).meta.get("format") == "sentences"]
        raise UserError(f"dataset {dataset!r} is not a sentence-classification dataset; choose one of: {', '.join(names)}")
    paths = locate(spec, data_dir)
    classes = list(spec.meta["classes"])  # type: ignore[arg-type]
    sentences: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(spec.meta["files_by_class"]):  # type: ignore[arg-type]
        lines = read_lines(paths[name], str(spec.meta["encoding"]))
        sentences += lines
        labels += [label] * len(lines)
    return sentences, torch.tensor(labels, dtype=torch.long), classes


def fold_assignment(num_examples: int, num_folds: int, seed: int) -> torch.Tensor:
    """The fold (0..num_folds-1) of each example: a seeded permutation dealt round-robin, so folds differ
    in size by at most one, are disjoint, cover every example and depend only on (N, folds, seed).

    Reference: Kim 2014, "Convolutional Neural Networks for Sentence Classification", arXiv:1408.5882,
        Sec. 3 (10-fold cross-validation on MR; Kim's code draws the fold of each sentence at random).
    """
    if num_folds < 2 or num_folds > num_examples:
        raise UserError(f"cross-validation needs 2 <= folds <= {num_examples} examples, got {num_folds}")
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))
    folds = torch.empty(num_examples, dtype=torch.long)
    folds[order] = torch.arange(num_examples) % num_folds
    return folds


class WordVocab:
    """Words <-> ids: id 0 is padding, 1 the unknown word, then words by falling frequency (ties A-Z)."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if words[:2] != [PAD, UNK] or len(set(words)) != len(words):
            raise UserError(f"a word vocabulary starts with {PAD!r}, {UNK!r} and holds distinct words")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, sentences: Iterable[list[str]], min_freq: int = 1) -> WordVocab:
        counts = Counter(token for tokens in sentences for token in tokens)
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids if i != PAD_ID]


def pad_batch(rows: Sequence[Sequence[int]], max_tokens: int) -> torch.Tensor:
    """Id rows (each truncated to ``max_tokens``) right-padded with PAD_ID to the longest: (B, T)."""
    width = max(1, min(max_tokens, max(len(r) for r in rows)))
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    for b, row in enumerate(rows):
        row = row[:width]
        ids[b, :len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


def trim(ids: torch.Tensor) -> torch.Tensor:
    """A padded batch cut to its longest row, so a batch of short sentences computes over short rows."""
    width = max(int((ids != PAD_ID).sum(1).max()), 1)
    return ids[:, :width]
