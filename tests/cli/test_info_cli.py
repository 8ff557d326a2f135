"""``archzoo info MODEL``: the layer table through ``main([...])``."""

from __future__ import annotations

import re

import pytest

from archzoo.cli.main import main
from archzoo.models import list_models
from helpers import MODEL_FAMILIES, NO_MATMUL_MODELS


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def layer_rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+(\w+)\s+(\[[\d, ]+\])\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)$", line)
        if m:
            rows[m.group(1)] = [m.group(2), m.group(3), m.group(4).replace(",", ""), m.group(5).replace(",", "")]
    return rows


def flops_per_example(out: str) -> int:
    return int(re.search(r"forward FLOPs per example: ([\d,]+)", out).group(1).replace(",", ""))


def test_info_simple_cnn(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = cli(capsys, "info", "simple_cnn")
    assert rc == 0 and err == ""
    rows = layer_rows(out)
    assert list(rows)[:3] == ["features.0", "features.1", "features.2"] and len(rows) == 11
    assert rows["features.0"] == ["Conv2d", "[1, 32, 28, 28]", "320", str(2 * 28 * 28 * 32 * 9)]
    # pooling before the activation (the same function, the activation on a quarter of the elements)
    assert rows["features.4"][:2] == ["MaxPool2d", "[1, 64, 7, 7]"] and rows["features.5"][:2] == ["ReLU", "[1, 64, 7, 7]"]
    assert rows["classifier.4"] == ["Linear", "[1, 10]", "1290", str(2 * 128 * 10)]
    assert re.search(r"^total\s+421,642\s+[\d,]+\s+[\d.]+$", out, re.M)
    assert "parameters: 421,642 (1.61 MiB fp32)" in out
    assert flops_per_example(out) == sum(int(r[3]) for r in rows.values()) > 0


def test_info_lenet5_rgb_32(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "info", "lenet5", "--set", "in_channels=3", "--set", "image_size=32")
    assert rc == 0
    rows = layer_rows(out)
    assert rows["features.0"][:3] == ["Conv2d", "[1, 6, 28, 28]", str(6 * 3 * 25 + 6)]  # no padding at 32x32
    assert rows["features.5"][1] == "[1, 16, 5, 5]"
    assert "parameters: 62,006" in out and flops_per_example(out) > 0


def test_info_batch_size_scales_shapes_not_per_example_flops(capsys: pytest.CaptureFixture[str]) -> None:
    _, one, _ = cli(capsys, "info", "mlp")
    rc, four, _ = cli(capsys, "info", "mlp", "--batch-size", "4", "--set", "model.dropout=0.5")
    assert rc == 0
    assert layer_rows(four)["net.1"][1] == "[4, 800]" and layer_rows(one)["net.1"][1] == "[1, 800]"
    assert flops_per_example(four) == flops_per_example(one) == 2 * (784 * 800 + 800 * 800 + 800 * 10)


@pytest.mark.parametrize("name", list_models())
def test_info_every_model(capsys: pytest.CaptureFixture[str], name: str) -> None:
    rc, out, _ = cli(capsys, "info", name)
    language_models = MODEL_FAMILIES["recurrent_lm"] + MODEL_FAMILIES["transformer_lm"]
    # logits for 8 characters, D's logit on one generated image, 2 sentiment classes, an output at each of 16
    # steps (the adding problem's sizes), 96 steps of 7
    # channels (channel-independent forecasters: a row per channel), logits for 6 target tokens over 8,000
    # pieces, a recalled 28 x 28 image, CTC log-probabilities of 8 frames over 10 digits and the blank, or 10
    # classes
    output = ("[1, 8, 65]" if name in language_models else "[1, 1]" if name in MODEL_FAMILIES["gan"]
              else "[1, 784]" if name in MODEL_FAMILIES["associative_memory"]
              else "[1, 8, 11]" if name.startswith("ctc_")
              else "[1, 6, 8000]" if name in MODEL_FAMILIES["translator"]
              else "[1, 2]" if name in MODEL_FAMILIES["sentence_classifier"]
              else "[1, 16, 1]" if name in MODEL_FAMILIES["sequence_model"]
              else "[7, 96]" if name in MODEL_FAMILIES["forecaster"] and name not in ("naive_last", "seasonal_naive")
              else "[1, 96, 7]" if name in MODEL_FAMILIES["forecaster"] else "[1, 10]")
    assert rc == 0 and out.splitlines()[0] == name and output in out
    assert (flops_per_example(out) > 0) == (name not in NO_MATMUL_MODELS)


def test_output_piped_into_a_reader_that_leaves_is_quiet() -> None:
    """`archzoo info simple_cnn | head -1`: the closed pipe ends the program quietly (exit 141, as
    SIGPIPE would), with no traceback and no 'internal error'."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "archzoo", "info", "simple_cnn"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the table is written
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141
    assert err == ""
