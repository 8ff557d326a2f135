"""Sentence data (data/sentences.py): MR reading, Kim's tokenizer, the word vocabulary, folds, padding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.data.sentences import (
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    WordVocab,
    fold_assignment,
    load_sentences,
    pad_batch,
    read_lines,
    tokenize,
    trim,
)
from archzoo.errors import UserError
from helpers import needs_mr


def test_tokenize_follows_kims_clean_str() -> None:
    assert tokenize("It's a DELIGHT!") == ["it", "'s", "a", "delight", "!"]
    assert tokenize("doesn't work, (really)?") == ["does", "n't", "work", ",", "(", "really", ")", "?"]
    assert tokenize("we'll've you'd they're") == ["we", "'ll", "'ve", "you", "'d", "they", "'re"]
    assert tokenize("café -- 100%") == ["caf", "100"]  # non-ASCII and other symbols split words, as Kim's
    assert tokenize("  ...  ") == [] and tokenize("") == []


def test_vocab_min_frequency_order_pad_and_unk() -> None:
    sentences = [["a", "b", "a"], ["c", "a", "b"], ["d"]]
    vocab = WordVocab.build(sentences, min_freq=2)
    assert vocab.words == [PAD, UNK, "a", "b"] and len(vocab) == 4
    assert vocab.encode(["a", "c", "b", "zzz"]) == [2, UNK_ID, 3, UNK_ID]
    assert vocab.decode([2, 3, PAD_ID]) == ["a", "b"]
    assert WordVocab.build(sentences).words == [PAD, UNK, "a", "b", "c", "d"]  # ties in A-Z order
    assert WordVocab(vocab.words).index == vocab.index  # rebuilt from the saved word list
    for bad in (["a", "b"], [PAD, UNK, "a", "a"]):
        with pytest.raises(UserError):
            WordVocab(bad)


@pytest.mark.parametrize(("n", "k"), [(10_662, 10), (23, 10), (7, 2)])
def test_folds_are_disjoint_covering_balanced_and_deterministic(n: int, k: int) -> None:
    folds = fold_assignment(n, k, seed=0)
    assert folds.shape == (n,) and folds.min() == 0 and folds.max() == k - 1
    sizes = torch.bincount(folds, minlength=k)
    assert sizes.sum() == n and sizes.max() - sizes.min() <= 1  # every example in exactly one fold
    assert torch.equal(folds, fold_assignment(n, k, seed=0))
    assert not torch.equal(folds, fold_assignment(n, k, seed=1))
    with pytest.raises(UserError):
        fold_assignment(n, 1, seed=0)


def test_pad_batch_truncates_and_trim_cuts_to_the_longest() -> None:
    ids = pad_batch([[5, 6, 7], [8], [9, 10, 11, 12, 13]], max_tokens=4)
    assert ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [9, 10, 11, 12]]
    assert trim(torch.cat([ids[:2], torch.zeros(2, 3, dtype=torch.long)], 1)).tolist() == [[5, 6, 7], [8, 0, 0]]


def test_read_lines_splits_on_newline_only(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9 good\nnice \x85 film\n\nlast")
    assert read_lines(path) == ["café good", "nice \x85 film", "last"]  # 0x85 (NEL) does not split


@needs_mr
def test_mr_has_5331_sentences_per_class() -> None:
    sentences, labels, classes = load_sentences("rt-polarity")
    assert classes == ["negative", "positive"] and len(sentences) == 10_662
    assert torch.bincount(labels).tolist() == [5331, 5331]
    assert all(s and "\n" not in s for s in sentences)
    with pytest.raises(UserError, match="not a sentence-classification dataset"):
        load_sentences("mnist")
