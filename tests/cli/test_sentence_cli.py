"""``archzoo train`` -> ``archzoo predict`` for sentence classification, end to end on a small real MR
subset, and bad sentences through the CLI: one line, non-zero exit, no traceback."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from archzoo.cli.main import main
from helpers import SHARED_DATA, cli, needs_mr

pytestmark = needs_mr
SMALL = ["data.max_examples=600", "model.args.embedding_dim=16", "model.args.num_maps=8", "train.batch_size=50",
         "train.log_every_steps=5", "train.eval_batch_size=500"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """textcnn (small) trained for 10 steps on 600 MR sentences through the CLI."""
    folder = tmp_path_factory.mktemp("mr") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCHZOO_DATA", str(SHARED_DATA))
        mp.setenv("XDG_CACHE_HOME", str(folder.parent / "cache"))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = main(["train", "mr-textcnn", "--max-steps", "10", "--out", str(folder), "--no-progress",
                       *[arg for o in SMALL for arg in ("--set", o)]])
    assert rc == 0, out.getvalue()
    assert re.search(r"^test: loss=[\d.]+ accuracy=[\d.]+$", out.getvalue(), re.M)
    return folder


def test_train_writes_the_vocabulary_with_the_run(run: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "sentence_classification"
    vocab = config["data"]["vocab"]
    assert vocab[:2] == ["<pad>", "<unk>"] and "film" in vocab
    assert config["model"]["args"]["vocab_size"] == len(vocab)
    assert json.loads((run / "eval.json").read_text())["fold"] == 0


def test_predict_prints_the_label_and_its_probability(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, "predict", str(run), "the film is a delight", "a dull , tedious mess")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 2
    for line, sentence in zip(lines, ["the film is a delight", "a dull , tedious mess"], strict=True):
        text, prediction = line.split("\t")
        label, probability = prediction.split()
        assert text == sentence and label in ("negative", "positive") and 0.5 <= float(probability) <= 1.0


@pytest.mark.parametrize(("sentence", "message"), [
    ("zzqx qqzzv", "no word of 'zzqx qqzzv' is in the model's vocabulary"),
    ("", "has no words"),
    (" ... ", "has no words"),
])
def test_bad_sentences_are_one_line_errors(run: Path, capsys: pytest.CaptureFixture[str], sentence: str,
                                           message: str) -> None:
    rc, out, err = cli(capsys, "predict", str(run), sentence)
    assert rc != 0 and out == ""
    assert err.count("\n") == 1 and message in err and "the film is a delight" in err


def test_a_non_sentence_dataset_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = cli(capsys, "train", "mr-textcnn", "--dry-run", "--set", "data.dataset='mnist'")
    assert rc != 0 and "not a sentence-classification dataset" in err and err.count("\n") == 1
