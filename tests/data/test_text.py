"""Text corpora and the character vocabulary (data/text.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from archzoo.data.text import END, CharVocab, load_text, read_corpus
from archzoo.errors import UserError


def test_tinyshakespeare_loads_with_its_65_characters() -> None:
    text = load_text("tinyshakespeare")
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    assert len(CharVocab.from_text(text)) == 65


def test_the_corpora_ship_inside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)  # nothing but the package's own copy left to find
    assert len(load_text("tinyshakespeare")) == 1_115_394
    assert len(load_text("makemore-names").split()) == 32_033


def test_an_image_dataset_is_not_a_text_corpus() -> None:
    with pytest.raises(UserError, match="not a text corpus.*tinyshakespeare"):
        load_text("mnist")


def test_vocab_round_trip_and_sorted_ids() -> None:
    vocab = CharVocab.from_text("hello world\n")
    assert vocab.chars == "\n dehlorw" and vocab.index[END] == 0
    ids = vocab.encode("world hello")
    assert ids.dtype == torch.long and vocab.decode(ids) == "world hello"


def test_unknown_characters_are_named_or_skipped() -> None:
    vocab = CharVocab.from_text("abc")
    with pytest.raises(UserError, match=r"'x', 'z'.*--unknown skip") as excinfo:
        vocab.encode("azbxc")
    assert "\n" not in str(excinfo.value)
    assert vocab.decode(vocab.encode("azbxc", unknown="skip")) == "abc"


@pytest.mark.parametrize(("content", "message"), [(b"", "empty"), (b"  \n\t", "empty"),
                                                   (b"\x89PNG\r\n\x1a\n\x00\x00", "not a text file"),
                                                   (b"caf\xe9", "not UTF-8")])
def test_empty_or_binary_corpus_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_corpus(path)
