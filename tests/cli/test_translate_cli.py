"""``archzoo train`` -> ``translate`` / ``eval`` for translation, end to end on a small real Multi30K slice,
and bad input through the CLI: one line, non-zero exit, no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

import archzoo
from archzoo.cli.main import main
from helpers import SHARED_DATA, cli

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="../shared/data/multi30k not staged")
SMALL = ["data.max_train_pairs=300", "data.max_eval_pairs=24", "data.vocab_size=200", "data.test_sets=['test2016']",
         "data.beam_size=3", "train.batch_size=32", "train.log_every_steps=5", "train.eval_batch_size=64",
         "train.precision='fp32'"]
TINY = {"multi30k-transformer": ["model.args.d_model=32", "model.args.num_heads=4", "model.args.dim_feedforward=64",
                                 "model.args.num_encoder_layers=1", "model.args.num_decoder_layers=1"],
        "multi30k-lstm": ["model.args.embedding_dim=16", "model.args.hidden_size=32", "model.args.num_layers=1"]}


def train(folder: Path, preset: str) -> str:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHZOO_DATA", str(SHARED_DATA))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = main(["train", preset, "--max-steps", "8", "--out", str(folder), "--no-progress",
                       *[arg for o in SMALL + TINY[preset] for arg in ("--set", o)]])
    assert rc == 0, out.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mt") / "run"
    out = train(folder, "multi30k-transformer")
    assert re.search(r"^test2016: .*bleu=[\d.]+ .*greedy_bleu=[\d.]+", out, re.M), out
    return folder


def test_the_run_keeps_its_tokenizers_and_reports_every_figure(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "translation"
    assert config["data"]["source_tokenizer"].startswith("bpe\t") and config["data"]["target_tokenizer"].startswith("bpe\t")
    report = json.loads((run / "eval.json").read_text())
    entry = report["test_sets"]["test2016"]
    assert entry["sentences"] == 24 and set(entry) >= {"greedy", "beam", "perplexity", "bleu_by_length"}
    assert report["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert (run / "bleu_by_length.png").stat().st_size > 0
    assert len((run / "test2016.beam.en").read_text().splitlines()) == 24


def test_translate_sentences_and_files(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, "translate", str(run), "Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.")
    assert rc == 0 and err == "" and len(out.splitlines()) == 2
    source = tmp_path / "de.txt"
    source.write_text("Ein Mann fährt Fahrrad.\nZwei Hunde spielen im Schnee.\n", encoding="utf-8")
    rc, out, _ = cli(capsys, "translate", str(run), "--input", str(source), "--output", str(tmp_path / "en.txt"),
                     "--beam", "1", "--from", "de", "--to", "en")
    assert rc == 0 and "wrote 2 translations" in out
    assert len((tmp_path / "en.txt").read_text(encoding="utf-8").splitlines()) == 2


def test_translate_uses_the_length_penalty_the_report_chose(run: Path) -> None:
    report = json.loads((run / "eval.json").read_text())
    assert set(report["length_penalty_search"]["val_beam_bleu"]) == {"0.0", "0.6", "0.8", "1.0", "1.2", "1.5"}
    loaded = archzoo.load(run)
    assert loaded.report_defaults() == {"translate": {"length_penalty": report["length_penalty"]}}
    sentences = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    chosen = loaded.translate(sentences).texts
    assert chosen == loaded.translate(sentences, length_penalty=report["length_penalty"]).texts


def test_the_api_translates_and_keeps_attention(run: Path) -> None:
    result = archzoo.load(run).translate("Ein Mann fährt Fahrrad.", beam=1, attention=True)
    assert len(result.texts) == 1 and result.attention is not None
    assert result.attention.shape[0] == len(result.output_tokens) and result.attention.shape[-1] == len(result.source_tokens)


def test_show_attention_draws_a_heatmap(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "attention.png"
    rc, out, _ = cli(capsys, "translate", str(run), "Ein Mann fährt Fahrrad.", "--show-attention", str(png),
                     "--layer", "0", "--head", "2")
    assert rc == 0 and png.stat().st_size > 0 and f"wrote {png}" in out


def test_eval_prints_the_signature_and_writes_the_plot(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "eval", str(run))
    assert rc == 0 and "signature nrefs:1|case:mixed" in out and "test2016: BLEU" in out
    assert "bleu_by_length.png" in out


def test_an_overlong_sentence_is_truncated_with_a_warning(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, "translate", str(run), "Hund " * 300)
    assert rc == 0 and len(out.splitlines()) == 1
    assert re.fullmatch(r"warning: sentence 1 has more than 99 tokens; translated its first 99 \(data.max_tokens\)\n", err)


@pytest.mark.parametrize(("argv", "message"), [
    (["   "], "sentence 1 is empty; give a de sentence such as 'Ein Mann fährt Fahrrad.'"),
    (["Ein Hund.", "--from", "en"], "--from en: this run translates de -> en"),
    (["Ein Hund.", "--to", "fr"], "--to fr: this run translates de -> en"),
    ([], "nothing to translate"),
    (["Ein Hund.", "--beam", "0"], "--beam must be >= 1"),
    (["Ein Hund.", "--length-penalty", "-1"], "the length penalty must be a finite number >= 0"),
    (["Ein Hund.", "--length-penalty", "nan"], "argument --length-penalty: must be a finite number, got nan"),
    (["Ein Hund.", "--output", "."], "argument --output: . is a folder; give a file name such as translations.txt"),
    (["--input", "."], "argument --input: . is a folder"),
    (["Ein Hund.", "Ein Ball.", "--show-attention", "a.png"], "attention is drawn for one sentence; got 2"),
    (["Ein Hund.", "--show-attention", "a.png", "--layer", "5"], "--layer must be in"),
])
def test_bad_input_is_one_line(run: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli(capsys, "translate", str(run), *argv)
    assert rc != 0 and message in err and len(err.strip().splitlines()) == 1


def test_bad_input_files_are_one_line(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gap = tmp_path / "gap.txt"
    gap.write_text("Ein Hund.\n\nEin Ball.\n", encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Ein Mann fährt.\n".encode("latin-1"))
    for path, message in ((gap, "line 2 of"), (latin, "is not UTF-8 text"), (tmp_path / "none.txt", "does not exist")):
        rc, _, err = cli(capsys, "translate", str(run), "--input", str(path))
        assert rc != 0 and message in err and len(err.strip().splitlines()) == 1


def test_non_utf8_standard_input_is_one_line(run: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("Ein Mann fährt.\n".encode("latin-1"))))
    rc, _, err = cli(capsys, "translate", str(run), "--input", "-")
    assert rc == 2 and "--input standard input is not UTF-8 text (byte 10); save it as UTF-8" in err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Ein Hund.\nEin Ball.\n")))
    rc, out, _ = cli(capsys, "translate", str(run), "--input", "-", "--beam", "1")
    assert rc == 0 and len(out.splitlines()) == 2


def test_a_model_without_attention_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lstm"
    train(folder, "multi30k-lstm")
    rc, _, err = cli(capsys, "translate", str(folder), "Ein Hund.", "--show-attention", str(tmp_path / "a.png"))
    assert rc != 0 and "LSTMSeq2Seq has no attention to draw" in err
