"""Translation data (data/translation.py): Multi30K pairs, word and BPE tokenizers, id rows, length buckets."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import torch

from archzoo.data import translation
from archzoo.data.sources import DatasetSpec, FileSpec
from archzoo.data.translation import (
    BOS_ID,
    EOS,
    EOS_ID,
    PAD,
    PAD_ID,
    UNK,
    UNK_ID,
    BPETokenizer,
    WordTokenizer,
    build_tokenizer,
    detokenize_words,
    encode_pairs,
    load_parallel,
    pad_ids,
    tokenizer_from_string,
    word_tokenize,
)
from archzoo.errors import UserError
from archzoo.registry import Registry
from helpers import SHARED_DATA

needs_multi30k = pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="../shared/data/multi30k not staged")


def one_line(excinfo: pytest.ExceptionInfo[UserError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


@pytest.fixture(scope="module")
def de_en_train() -> tuple[list[str], list[str]]:
    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip("../shared/data/multi30k not staged")
    return load_parallel("multi30k", "de", "en", "train", SHARED_DATA)


@pytest.fixture(scope="module")
def bpe_en(de_en_train: tuple[list[str], list[str]]) -> BPETokenizer:
    return BPETokenizer.train(de_en_train[1][:2000], vocab_size=500)


# ---------------------------------------------------------------- reading pairs


@needs_multi30k
@pytest.mark.parametrize(("split", "n"), [("train", 29_000), ("val", 1_014), ("test2016", 1_000)])
def test_load_parallel_de_en_line_counts(split: str, n: int) -> None:
    de, en = load_parallel("multi30k", "de", "en", split)
    assert len(de) == len(en) == n
    assert all(s and s == s.strip() for s in de + en)


@needs_multi30k
def test_load_parallel_aligns_lines_and_swaps_sides(de_en_train: tuple[list[str], list[str]]) -> None:
    de, en = de_en_train
    assert en[0] == "Two young, White males are outside near many bushes."
    assert de[0] == "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
    en2, de2 = load_parallel("multi30k", "en", "de", "val")
    assert (de2[0], en2[0]) == tuple(s[0] for s in load_parallel("multi30k", "de", "en", "val"))
    cs, en3 = load_parallel("multi30k", "cs", "en", "test2018")
    assert len(cs) == len(en3) == 1_071


@pytest.mark.parametrize(("args", "needles"), [
    (("rt-polarity", "de", "en", "train"), ["not a parallel", "multi30k"]),
    (("multi30k", "en", "en", "train"), ["both 'en'", "different"]),
    (("multi30k", "de", "xx", "train"), ["no language 'xx'", "cs, de, en, fr"]),
    (("multi30k", "cs", "en", "test2017"), ["no split 'test2017' for cs-en", "train, val, test2016, test2018"]),
    (("multi30k", "de", "en", "dev"), ["no split 'dev'", "test2017-mscoco"]),
])
def test_load_parallel_bad_input_is_one_line(args: tuple[str, str, str, str], needles: list[str]) -> None:
    with pytest.raises(UserError) as excinfo:
        load_parallel(*args)
    message = one_line(excinfo)
    assert all(needle in message for needle in needles), message


def test_load_parallel_line_count_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = []
    for lang, text in (("aa", "one\ntwo\nthree\n"), ("bb", "eins\nzwei\n")):
        path = tmp_path / "toy" / f"train.{lang}.gz"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(gzip.compress(text.encode()))
        files.append(FileSpec(path.name, hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size, ""))
    datasets: Registry[DatasetSpec] = Registry("dataset")
    datasets.add("toy", DatasetSpec("toy", "toy", "", "", "", {}, tuple(files),
                                    {"format": "parallel", "languages": ["aa", "bb"], "splits": {"train": "train"}}))
    monkeypatch.setattr(translation, "DATASETS", datasets)
    with pytest.raises(UserError) as excinfo:
        load_parallel("toy", "aa", "bb", "train", tmp_path)
    assert "train.aa.gz has 3 lines but train.bb.gz has 2" in one_line(excinfo)


# ---------------------------------------------------------------- words


@pytest.mark.parametrize(("text", "tokens"), [
    ("Ein Mann fährt Fahrrad.", ["Ein", "Mann", "fährt", "Fahrrad", "."]),
    ("Die Straße, der Fußgänger und ein T-Shirt!", ["Die", "Straße", ",", "der", "Fußgänger", "und", "ein", "T-Shirt", "!"]),
    ("Obst- und Gemüsehändler", ["Obst-", "und", "Gemüsehändler"]),
    ("Muž v černém tričku řídí kolo.", ["Muž", "v", "černém", "tričku", "řídí", "kolo", "."]),
    ("L'homme (âgé) porte 3,50 € à 10:30.", ["L'homme", "(", "âgé", ")", "porte", "3,50", "€", "à", "10:30", "."]),
    ('A man\'s "big" dog - 2.5 m.', ["A", "man's", '"', "big", '"', "dog", "-", "2.5", "m", "."]),
    ("  ", []),
])
def test_word_tokenize_keeps_letters_in_words_and_splits_punctuation(text: str, tokens: list[str]) -> None:
    assert word_tokenize(text) == tokens
    assert detokenize_words(tokens) == " ".join(text.split())


def test_word_tokenize_lowercase() -> None:
    assert word_tokenize("ÄRGER Über Čaj", lowercase=True) == ["ärger", "über", "čaj"]


def test_detokenize_quotes_and_brackets() -> None:
    assert detokenize_words(["Er", "sagt", "„", "Hallo", "“", "und", "geht", "."]) == "Er sagt „Hallo“ und geht."
    assert detokenize_words(["He", "says", "“", "hi", "”", "(", "twice", ")", "."]) == "He says “hi” (twice)."
    assert detokenize_words([]) == ""


@needs_multi30k
@pytest.mark.parametrize(("lang", "at_least"), [("en", 1012), ("de", 1011)])
def test_detokenize_round_trips_multi30k_val(lang: str, at_least: int) -> None:
    sentences = load_parallel("multi30k", lang, "fr", "val")[0]
    exact = sum(detokenize_words(word_tokenize(s)) == s for s in sentences)
    assert exact >= at_least  # measured: en 1012/1014, de 1011/1014 (the rest: "J.P.", " ... ", a no-break space)


# ---------------------------------------------------------------- word tokenizer


def test_word_tokenizer_specials_min_freq_and_unknowns() -> None:
    tok = WordTokenizer.build(["a b a .", "c a b .", "d"], min_freq=2)
    assert tok.words == [PAD, UNK, "<s>", EOS, "a", ".", "b"] and len(tok) == 7  # falling count, ties A-Z
    assert tok.encode("a c b zzz .") == [4, UNK_ID, 6, UNK_ID, 5]
    assert tok.pieces("a c b.") == ["a", "c", "b", "."]
    assert tok.decode([BOS_ID, 4, 6, 5, EOS_ID, PAD_ID, PAD_ID]) == "a b."
    assert tok.decode([4, UNK_ID]) == "a <unk>"
    assert WordTokenizer.build(["a b a", "c"], min_freq=1).words[4:] == ["a", "b", "c"]
    lower = WordTokenizer.build(["Der Hund", "der hund"], min_freq=2, lowercase=True)
    assert lower.words[4:] == ["der", "hund"] and lower.encode("DER Hund") == [4, 5]


def test_word_tokenizer_to_string_round_trip() -> None:
    tok = WordTokenizer.build(["Ein Mann fährt.", "Ein Mann läuft."], min_freq=1, lowercase=True)
    text = tok.to_string()
    assert text.startswith("word\t1\n<pad>\n<unk>\n<s>\n</s>\n")
    again = tokenizer_from_string(text)
    assert isinstance(again, WordTokenizer) and again.kind == "word" and again.lowercase
    assert again.words == tok.words and again.encode("ein MANN läuft") == tok.encode("ein MANN läuft")


# ---------------------------------------------------------------- BPE tokenizer


@needs_multi30k
def test_bpe_round_trips_val_text_exactly(bpe_en: BPETokenizer) -> None:
    assert bpe_en.kind == "bpe" and len(bpe_en) == 500
    assert [bpe_en.processor.id_to_piece(i) for i in range(4)] == [PAD, UNK, "<s>", EOS]
    val = load_parallel("multi30k", "en", "de", "val")[0]
    for s in val:
        ids = bpe_en.encode(s)
        assert UNK_ID not in ids and min(ids) > EOS_ID  # no specials inside a sentence
        assert bpe_en.decode(ids) == s
        assert bpe_en.decode([BOS_ID, *ids, EOS_ID, PAD_ID]) == s
    pieces = bpe_en.pieces(val[0])
    assert len(pieces) == len(bpe_en.encode(val[0])) and "".join(pieces).replace("▁", " ").strip() == val[0]


@needs_multi30k
def test_bpe_training_is_deterministic_and_to_string_round_trips(de_en_train: tuple[list[str], list[str]],
                                                                 bpe_en: BPETokenizer) -> None:
    again = BPETokenizer.train(de_en_train[1][:2000], vocab_size=500)
    assert again.to_string() == bpe_en.to_string() and bpe_en.to_string().startswith("bpe\t")
    rebuilt = tokenizer_from_string(bpe_en.to_string())
    assert isinstance(rebuilt, BPETokenizer)
    for s in de_en_train[1][5000:5020]:
        assert rebuilt.encode(s) == bpe_en.encode(s) and rebuilt.pieces(s) == bpe_en.pieces(s)


def test_bpe_trains_on_a_tiny_corpus_and_lowercase_is_remembered() -> None:
    sentences = ["Der Hund läuft.", "Die Katze schläft.", "Der Hund schläft."] * 3
    tok = build_tokenizer("bpe", sentences, vocab_size=60, min_freq=99, lowercase=True)
    assert isinstance(tok, BPETokenizer) and 4 < len(tok) <= 60  # hard_vocab_limit=False: fewer pieces is fine
    assert tok.decode(tok.encode("DER Hund schläft.")) == "der hund schläft."
    rebuilt = tokenizer_from_string(tok.to_string())
    assert isinstance(rebuilt, BPETokenizer) and rebuilt.lowercase
    assert rebuilt.encode("Die KATZE") == tok.encode("die katze")
    cased = build_tokenizer("bpe", sentences, vocab_size=60, min_freq=99, lowercase=False)
    assert cased.decode(cased.encode("Der Hund schläft.")) == "Der Hund schläft."


def test_build_tokenizer_word_and_unknown_kind() -> None:
    tok = build_tokenizer("word", ["a b", "a"], vocab_size=3, min_freq=2, lowercase=False)
    assert isinstance(tok, WordTokenizer) and tok.words[4:] == ["a"]
    with pytest.raises(UserError) as excinfo:
        build_tokenizer("wordpiece", ["a"], 10, 1, False)
    assert "'wordpiece'" in one_line(excinfo) and "bpe, word" in str(excinfo.value)


@pytest.mark.parametrize(("text", "needle"), [
    ("", "malformed tokenizer string"),
    ("sentencepiece\tAAAA", "expected one of: bpe, word"),
    ("word\t2\n<pad>\n<unk>\n<s>\n</s>", "word tokenizer string"),
    ("word\t0", "word tokenizer string"),
    ("word\t0\na\nb", "starts with <pad>"),
    ("word\t0\n<pad>\n<unk>\n<s>\n</s>\nx\nx", "distinct"),
    ("bpe\t!!not base64!!", "BPE tokenizer string"),
    ("bpe\t", "BPE tokenizer string"),
    ("bpe\tZ2FyYmFnZSBieXRlcw==", "not a serialized sentencepiece model"),
    ("bpe\tZ2FyYmFnZSBieXRlcw==\tupper", "BPE tokenizer string"),
])
def test_tokenizer_from_string_rejects_malformed_text(text: str, needle: str) -> None:
    with pytest.raises(UserError) as excinfo:
        tokenizer_from_string(text)
    assert needle in one_line(excinfo)


# ---------------------------------------------------------------- ids and batches


def test_encode_pairs_adds_bos_eos_and_truncates_keeping_eos() -> None:
    tok = WordTokenizer.build(["a b c d e f"], min_freq=1)
    a, b, c = tok.encode("a b c")
    src, tgt = encode_pairs(tok, tok, ["a b c", "a"], ["a b", "c"], max_tokens=10)
    assert src == [[a, b, c, EOS_ID], [a, EOS_ID]]
    assert tgt == [[BOS_ID, a, b, EOS_ID], [BOS_ID, c, EOS_ID]]
    src, tgt = encode_pairs(tok, tok, ["a b c d e f"], ["a b c d e f"], max_tokens=3)
    assert src == [[a, b, EOS_ID]] and tgt == [[BOS_ID, a, EOS_ID]]
    src, tgt = encode_pairs(tok, tok, [""], [""], max_tokens=2)
    assert src == [[EOS_ID]] and tgt == [[BOS_ID, EOS_ID]]
    with pytest.raises(UserError):
        encode_pairs(tok, tok, ["a"], ["a"], max_tokens=1)
    with pytest.raises(UserError):
        encode_pairs(tok, tok, ["a", "b"], ["a"], max_tokens=8)


def test_pad_ids_right_pads_to_the_longest() -> None:
    ids = pad_ids([[5, 6, 7], [8], [9, 10]])
    assert ids.dtype == torch.int64 and ids.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID], [9, 10, PAD_ID]]
    assert pad_ids([]).shape == (0, 0)
