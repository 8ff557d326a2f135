"""Text corpora and character vocabularies for character-level language modelling.

Two layouts: a *stream* (tinyshakespeare: one long text, split by position) and *lines* (makemore
names: one example per line). For lines, the newline is both the start and the end token, as
makemore's token 0: a name is modelled as "\\n" + name -> name + "\\n".
"""

from __future__ import annotations

from pathlib import Path

import torch

from archzoo.data.sources import DATASETS, locate
from archzoo.errors import UserError

END = "\n"


def load_text(dataset: str, data_dir: str | Path | None = None) -> str:
    """The whole corpus of a text dataset, checksum-verified, as a str."""
    spec = DATASETS.get(dataset)
    if "format" not in spec.meta or spec.meta["format"] not in ("stream", "lines"):
        raise UserError(f"dataset {dataset!r} is not a text corpus; choose one of: "
                        f"{', '.join(n for n in DATASETS.names() if DATASETS.get(n).meta.get('format') in ('stream', 'lines'))}")
    path = locate(spec, data_dir)[str(spec.meta["file"])]
    return read_corpus(path)


def read_corpus(path: str | Path) -> str:
    """Read a UTF-8 text file; empty or binary files are refused with a one-line error."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read corpus {path}: {e.strerror}") from None
    if b"\x00" in raw:
        raise UserError(f"{path} is not a text file (it contains NUL bytes); give a UTF-8 text corpus")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {e.start}); convert it to UTF-8") from None
    if not text.strip():
        raise UserError(f"{path} is empty; a language model needs a non-empty corpus")
    return text


class CharVocab:
    """Characters <-> integer ids; ids follow the sorted order of the characters (as char-rnn, nanoGPT)."""

    def __init__(self, chars: str):
        if not chars or len(set(chars)) != len(chars):
            raise UserError("a character vocabulary needs distinct characters")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, unknown: str = "error") -> torch.Tensor:
        """ids of ``text``; characters outside the vocabulary raise (naming them) or are skipped."""
        missing = sorted({c for c in text if c not in self.index})
        if missing:
            if unknown != "skip":
                shown = ", ".join(repr(c) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
                raise UserError(f"characters not in the model's vocabulary: {shown}; remove them or pass --unknown skip")
            text = "".join(c for c in text if c in self.index)
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return "".join(self.chars[i] for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids))
