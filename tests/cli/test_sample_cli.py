"""Language models end to end through the CLI: train on real text, evaluate, sample (streaming),
names with the count of new ones, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.cli.main import main

TINY = ["--set", "model.args.hidden_size=32", "--set", "model.args.embedding_dim=16", "--set",
        "model.args.num_layers=1", "--set", "train.eval_every_steps=10", "--set", "train.precision='fp32'",
        "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def shakespeare_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "run"
    assert main(["train", "shakespeare-gru", "--max-steps", "20", "--set", "data.context=32",
                 "--set", "train.batch_size=16", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def names_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("names") / "run"
    assert main(["train", "names-lstm", "--max-steps", "30", "--out", str(out), *TINY]) == 0
    return out


def test_training_reports_nats_per_char_and_saves_the_vocabulary(shakespeare_run: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import json

    config = json.loads((shakespeare_run / "config.json").read_text())
    assert config["task"] == "language_model" and len(config["data"]["vocab"]) == 65
    assert main(["eval", str(shakespeare_run)]) == 0
    out = capsys.readouterr().out
    assert "tinyshakespeare val:" in out and "nats/char" in out and "bits/char" in out


def test_sample_streams_the_prompt_and_the_requested_characters(shakespeare_run: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sample", str(shakespeare_run), "--prompt", "ROMEO:", "--tokens", "50", "--temperature", "0.8",
            "--top-k", "40", "--top-p", "0.95", "--seed", "1"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 50 + 1
    assert main(args) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    assert main([*args[:-1], "2", "--num-samples", "2"]) == 0
    assert capsys.readouterr().out.count("--- sample") == 2


def test_names_are_whole_lines_and_the_new_ones_are_counted(names_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(names_run), "--num-samples", "12", "--seed", "2"]) == 0
    captured = capsys.readouterr()
    names = captured.out.splitlines()
    assert len(names) == 12 and all(name == name.strip() for name in names)
    assert captured.err.strip().endswith("are new (not in the training set)")
    assert main(["sample", str(names_run), "--prompt", "ka", "--num-samples", "5"]) == 0
    assert all(n.startswith("ka") for n in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize(("extra", "message"), [
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--top-k", "0"], "--top-k must be >= 1"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--prompt", "ROMEO€"], "'€'"),
    (["--tokens", "0"], "--tokens"),
])
def test_bad_sampling_input_is_one_line(shakespeare_run: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                        message: str) -> None:
    assert main(["sample", str(shakespeare_run), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archzoo: error:") and message in err and len(err.strip().splitlines()) == 1


def test_unknown_prompt_characters_can_be_skipped(shakespeare_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(shakespeare_run), "--prompt", "RO€MEO", "--unknown", "skip", "--tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO")  # the prompt the model reads is echoed


def test_sample_and_predict_refuse_the_wrong_kind_of_run(shakespeare_run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "digit.png"
    from PIL import Image
    Image.new("L", (28, 28)).save(image)
    assert main(["predict", str(shakespeare_run), str(image)]) == 2
    assert "language_model run" in capsys.readouterr().err


def test_train_on_your_own_text_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 200)
    out = tmp_path / "run"
    assert main(["train", "shakespeare-rnn", "--set", f"data.dataset={str(corpus)!r}", "--set", "data.context=16",
                 "--set", "train.batch_size=8", "--max-steps", "10", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["sample", str(out), "--prompt", "the ", "--tokens", "20"]) == 0
    assert capsys.readouterr().out.startswith("the ")


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (b"\x00\x01\x02binary", "not a text file")])
def test_empty_or_binary_corpus_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes,
                                            message: str) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    assert main(["train", "shakespeare-rnn", "--set", f"data.dataset={str(corpus)!r}", "--dry-run", *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_text_dataset_suggests_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "shakespeare-rnn", "--set", "data.dataset='tinyshakespear'", "--dry-run", *TINY]) == 2
    err = capsys.readouterr().err
    assert "did you mean: tinyshakespeare" in err and "path of a UTF-8 text file" in err
