"""Parallel text for machine translation: reading sentence pairs, word and BPE tokenizers that save to a
string, source/target id rows with BOS/EOS, padding and a length-bucketed training order.

A parallel dataset (``meta["format"] == "parallel"``, e.g. Multi30K) holds one gzip UTF-8 file per split
and language, named ``<prefix>.<lang>.gz``; line i of one language translates line i of the other. Lines
are split on ``"\\n"`` only, so a stray U+0085 or U+2028 inside a caption cannot shift the alignment.

Every tokenizer maps ids 0..3 to PAD, UNK, BOS and EOS, encodes without BOS/EOS (``encode_pairs`` adds
them), and rebuilds from ``to_string()``, a plain str that a JSON run config can hold.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import torch

from archzoo.data.sources import DATASETS, locate
from archzoo.errors import UserError
from archzoo.vocab import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIALS, UNK, UNK_ID

TOKENIZER_KINDS = ("bpe", "word")


# ---------------------------------------------------------------- reading pairs


def load_parallel(dataset: str, source: str, target: str, split: str,
                  data_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """(source sentences, target sentences) of one split, aligned line by line and checksum-verified.

    ``source``/``target`` are language codes of the dataset (Multi30K: cs de en fr) and ``split`` a key of
    its ``meta["splits"]`` (train, val, test2016, ...). Only the two files needed are located and read.
    """
    spec = DATASETS.get(dataset)
    if spec.meta.get("format") != "parallel":
        names = [n for n in DATASETS.names() if DATASETS.get(n).meta.get("format") == "parallel"]
        raise UserError(f"dataset {dataset!r} is not a parallel (translation) dataset; choose one of: {', '.join(names)}")
    languages = list(spec.meta["languages"])  # type: ignore[call-overload]
    for lang in (source, target):
        if lang not in languages:
            raise UserError(f"dataset {dataset!r} has no language {lang!r}; its languages are: {', '.join(languages)}")
    if source == target:
        raise UserError(f"source and target language are both {source!r}; choose two different languages of {dataset!r}")
    splits: dict[str, str] = dict(spec.meta["splits"])  # type: ignore[call-overload]
    names = {f.name for f in spec.files}

    def files(key: str) -> list[str]:
        return [f"{splits[key]}.{lang}.gz" for lang in (source, target)]

    available = [key for key in splits if all(name in names for name in files(key))]
    if split not in available:
        raise UserError(f"dataset {dataset!r} has no split {split!r} for {source}-{target}; "
                        f"the splits of that pair are: {', '.join(available)}")
    src_name, tgt_name = files(split)
    paths = locate(spec, data_dir, names=[src_name, tgt_name])
    sources, targets = _read_gzip_lines(paths[src_name]), _read_gzip_lines(paths[tgt_name])
    if len(sources) != len(targets):
        raise UserError(f"{src_name} has {len(sources):,} lines but {tgt_name} has {len(targets):,}; "
                        "the two sides of a parallel split must have one line per sentence pair")
    return sources, targets


def _read_gzip_lines(path: Path) -> list[str]:
    """The stripped lines of a gzip UTF-8 file, split on ``"\\n"`` only (a final newline ends the last)."""
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} as gzip-compressed UTF-8 text ({type(e).__name__})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


# ---------------------------------------------------------------- words


# A word is a run of letters/digits/underscore (\w is Unicode-aware: ä ß é č stay inside words), joined
# through an internal hyphen or apostrophe (T-Shirt, l'homme, man's) or through . , : between digits
# (3.5, 10,000, 10:30), and keeping a hyphen that ends a word before a space (German "Obst- und
# Gemüsehändler"); every other non-space character is a token of its own. Keeping the joiners inside
# the word is what lets ``detokenize_words`` restore "man's" and "T-shirt" exactly; the price is a
# larger word vocabulary than Moses-style splitting ("man 's") would give.
_TOKEN = re.compile(r"\w+(?:(?:[-'’]|(?<=\d)[.,:](?=\d))\w+)*(?:-(?=\s|$))?|\S")
_NO_SPACE_BEFORE = frozenset(",.!?;:)]}'’»%…")
_NO_SPACE_AFTER = frozenset("([{‘«$#")
# Double quotes: „ (German) always opens and ” always closes; " and “ close an open quote, else open one
_OPENS, _CLOSES, _TOGGLES = frozenset("„"), frozenset("”"), frozenset('"“')


def word_tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Words and single punctuation marks: "Ein Mann fährt Fahrrad." -> ["Ein", "Mann", "fährt", "Fahrrad", "."].

    Whitespace (any Unicode space) only separates tokens. ``lowercase`` applies ``str.lower`` first.
    """
    return _TOKEN.findall(text.lower() if lowercase else text)


def detokenize_words(tokens: Sequence[str]) -> str:
    """Tokens joined by spaces, except none before , . ! ? ; : ) ] } ' % and closing quotes and none after
    ( [ { $ # and opening quotes; " and “ close an open double quote and otherwise open one.

    Used to turn word-level output back into text for BLEU (sacrebleu tokenizes again itself). On
    Multi30K's validation captions ``detokenize_words(word_tokenize(s)) == s`` for 1,012 of 1,014 (en), 1,011 (de),
    1,009 (fr) and 1,013 (cs).
    """
    out: list[str] = []
    glue = True  # no space before the first token
    quote_open = False
    for token in tokens:
        if token in _OPENS or token in _CLOSES or token in _TOGGLES:
            closing = token in _CLOSES or (token in _TOGGLES and quote_open)
            quote_open = not closing
            if out and not glue and not closing:
                out.append(" ")
            out.append(token)
            glue = not closing  # no space after an opening quote
            continue
        if out and not glue and token not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(token)
        glue = token in _NO_SPACE_AFTER
    return "".join(out)


# ---------------------------------------------------------------- tokenizers


class Tokenizer(Protocol):
    """Text <-> ids with PAD, UNK, BOS, EOS at ids 0..3; rebuilt by ``tokenizer_from_string(to_string())``."""

    kind: str

    def __len__(self) -> int: ...

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``, without BOS/EOS."""
        ...

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; PAD, BOS and EOS ids are skipped wherever they are (decoding does not stop at EOS)."""
        ...

    def pieces(self, text: str) -> list[str]:
        """The tokens of ``text`` as strings, one per id of ``encode(text)`` (axis labels of attention maps)."""
        ...

    def to_string(self) -> str:
        """Everything needed to rebuild the tokenizer, as one plain str."""
        ...


_SKIP = frozenset((PAD_ID, BOS_ID, EOS_ID))


class WordTokenizer:
    """Words (``word_tokenize``) <-> ids: 0..3 the specials, then words by falling frequency (ties A-Z).

    Words seen fewer than ``min_freq`` times in the training sentences map to UNK_ID, as in the vocabulary
    of Sutskever, Vinyals & Le 2014 ("Sequence to Sequence Learning with Neural Networks", arXiv:1409.3215,
    Sec. 3.1), which replaces out-of-vocabulary words by UNK. ``pieces`` shows the words themselves, UNK
    ones included, so attention-map labels stay readable.
    """

    kind = "word"

    def __init__(self, words: Sequence[str], lowercase: bool = False):
        words = list(words)
        if tuple(words[:4]) != SPECIALS or len(set(words)) != len(words) or any(not w or w.split() != [w] for w in words):
            raise UserError(f"a word vocabulary starts with {', '.join(SPECIALS)} and holds distinct words without spaces")
        self.words = words
        self.lowercase = lowercase
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, sentences: Iterable[str], min_freq: int = 2, lowercase: bool = False) -> WordTokenizer:
        counts = Counter(t for s in sentences for t in word_tokenize(s, lowercase))
        kept = sorted((w for w, c in counts.items() if c >= min_freq and w not in SPECIALS), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept], lowercase)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(t, UNK_ID) for t in word_tokenize(text, self.lowercase)]

    def decode(self, ids: Iterable[int]) -> str:
        return detokenize_words([self.words[i] for i in map(int, ids) if i not in _SKIP])

    def pieces(self, text: str) -> list[str]:
        return word_tokenize(text, self.lowercase)

    def to_string(self) -> str:
        return f"word\t{int(self.lowercase)}\n" + "\n".join(self.words)


class BPETokenizer:
    """Byte-pair-encoding subwords learnt by sentencepiece, with the text kept exactly as it is.

    Math: start from characters; repeatedly merge the most frequent adjacent pair of symbols in the training
        text into a new symbol until the vocabulary has ``vocab_size`` entries. Spaces become "▁" and belong
        to the following piece, so ``decode(encode(s)) == s`` whenever every character of s was seen.
    Reference: Sennrich, Haddow & Birch 2016, "Neural Machine Translation of Rare Words with Subword Units",
        ACL, arXiv:1508.07909, Sec. 3.2; Kudo & Richardson 2018, "SentencePiece", EMNLP demo, arXiv:1808.06226.
    Differs from paper: sentencepiece's BPE (whitespace as "▁", no end-of-word marker); with
        ``hard_vocab_limit=False`` a small corpus yields fewer pieces than asked. ``lowercase=True`` lower-cases
        the training sentences and every text given to ``encode`` and ``pieces``.
    """

    kind = "bpe"

    def __init__(self, model_proto: bytes, lowercase: bool = False):
        import sentencepiece as spm

        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError, TypeError):
            raise UserError("malformed BPE tokenizer: the model bytes are not a serialized sentencepiece model") from None
        if [processor.id_to_piece(i) for i in range(4)] != list(SPECIALS):
            raise UserError(f"a BPE model must hold {', '.join(SPECIALS)} at ids 0..3")
        self.model_proto = model_proto
        self.lowercase = lowercase
        self.processor = processor

    @classmethod
    def train(cls, sentences: list[str], vocab_size: int = 8000, seed: int = 0, lowercase: bool = False) -> BPETokenizer:
        """Learn the merges on ``sentences`` in memory, deterministically: one thread, no sampling or shuffling
        of the input, so the same sentences give the same model (and ``to_string``) every time. ``seed`` seeds
        sentencepiece's generator, which BPE training with these options does not draw from."""
        import sentencepiece as spm

        if vocab_size < len(SPECIALS) + 1:
            raise UserError(f"a BPE vocabulary needs more than {len(SPECIALS)} entries, got vocab_size={vocab_size}")
        text = [s.lower() for s in sentences] if lowercase else list(sentences)
        if not any(s.strip() for s in text):
            raise UserError("cannot train a BPE tokenizer on no text")
        spm.set_random_generator_seed(seed)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(text), model_writer=model, model_type="bpe", vocab_size=vocab_size,
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
                character_coverage=1.0, num_threads=1, shuffle_input_sentence=False, input_sentence_size=0,
                hard_vocab_limit=False, normalization_rule_name="identity", minloglevel=2)
        except RuntimeError as e:
            raise UserError(f"sentencepiece could not train a BPE model: {str(e).splitlines()[0]}") from None
        return cls(model.getvalue(), lowercase)

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def _text(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def encode(self, text: str) -> list[int]:
        return list(self.processor.encode(self._text(text)))

    def decode(self, ids: Iterable[int]) -> str:
        return self.processor.decode([i for i in map(int, ids) if i not in _SKIP])

    def pieces(self, text: str) -> list[str]:
        return list(self.processor.encode(self._text(text), out_type=str))

    def to_string(self) -> str:
        encoded = base64.b64encode(self.model_proto).decode("ascii")
        return f"bpe\t{encoded}\tlowercase" if self.lowercase else f"bpe\t{encoded}"


def tokenizer_from_string(text: str) -> Tokenizer:
    """The tokenizer whose ``to_string()`` gave ``text`` (either kind)."""
    kind, _, rest = text.partition("\t")
    if kind == "word":
        flag, _, words = rest.partition("\n")
        if flag not in ("0", "1") or not words:
            raise UserError("malformed word tokenizer string: expected 'word\\t<0|1>' then one word per line")
        return WordTokenizer(words.split("\n"), lowercase=flag == "1")
    if kind == "bpe":
        encoded, _, flag = rest.partition("\t")
        try:
            proto = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            proto = b""
        if not proto or flag not in ("", "lowercase"):
            raise UserError("malformed BPE tokenizer string: expected 'bpe\\t<base64 sentencepiece model>'")
        return BPETokenizer(proto, lowercase=flag == "lowercase")
    raise UserError(f"malformed tokenizer string: starts with {kind[:20]!r}, expected one of: {', '.join(TOKENIZER_KINDS)}")


def build_tokenizer(kind: str, sentences: list[str], vocab_size: int, min_freq: int, lowercase: bool) -> Tokenizer:
    """A tokenizer of ``kind`` learnt on ``sentences``: "bpe" uses ``vocab_size`` (``min_freq`` is ignored),
    "word" uses ``min_freq`` (``vocab_size`` is ignored). ``lowercase`` lower-cases the text first for both:
    the BPE tokenizer then lower-cases its training sentences and everything it encodes."""
    if kind == "bpe":
        return BPETokenizer.train(sentences, vocab_size, lowercase=lowercase)
    if kind == "word":
        return WordTokenizer.build(sentences, min_freq, lowercase)
    raise UserError(f"unknown tokenizer kind {kind!r}; choose one of: {', '.join(TOKENIZER_KINDS)}")


# ---------------------------------------------------------------- ids and batches


def encode_pairs(src_tok: Tokenizer, tgt_tok: Tokenizer, sources: Sequence[str], targets: Sequence[str],
                 max_tokens: int) -> tuple[list[list[int]], list[list[int]]]:
    """Id rows of sentence pairs: source ``x_1..x_n EOS``, target ``BOS y_1..y_m EOS``, each cut to at most
    ``max_tokens`` ids by dropping words at the end, so the final EOS is always kept."""
    if len(sources) != len(targets):
        raise UserError(f"{len(sources):,} source sentences but {len(targets):,} targets; pairs must align")
    if max_tokens < 2:
        raise UserError(f"max_tokens must be at least 2 (BOS and EOS), got {max_tokens}")
    src = [src_tok.encode(s)[:max_tokens - 1] + [EOS_ID] for s in sources]
    tgt = [[BOS_ID, *tgt_tok.encode(t)[:max_tokens - 2], EOS_ID] for t in targets]
    return src, tgt


def pad_ids(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    """Id rows right-padded with PAD_ID to the longest: (B, T) int64."""
    width = max((len(r) for r in rows), default=0)
    return torch.tensor([[*r, *[PAD_ID] * (width - len(r))] for r in rows], dtype=torch.long).view(len(rows), width)
