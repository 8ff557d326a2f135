"""``archzoo lab``: listing, a run and a report through main(), bad input as one-line errors, the lazy import
that keeps ``archzoo --help`` fast, and (slow) one real experiment's --quick run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, cli

EXPERIMENTS = sorted(["bidirectional-and-depth", "exposure-bias", "gradient-clipping", "gru-vs-lstm", "long-range",
                      "parallelism", "parameters-vs-length", "transformer-vs-rnn-time-to-quality",
                      "vanishing-gradients", "activations", "attention-and-length", "depth-and-residuals",
                      "mode-collapse", "receptive-field", "pretraining", "gpu-speedup", "regularisation", "the-articles-code",
                      "translation-invariance", "weight-sharing"])


def test_list_shows_every_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "lab", "list")
    assert rc == 0 and [line.split("\t")[0] for line in out.splitlines()] == EXPERIMENTS
    assert "long-range\tHow far back can each architecture remember?" in out and "(3 claims, 3 seeds" in out
    rc, out, _ = cli(capsys, "list", "experiments", "*gradient*")
    assert rc == 0 and out.splitlines() == ["gradient-clipping", "vanishing-gradients"]


def test_run_and_report_through_the_cli(fake_experiment, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, _ = cli(capsys, "lab", "run", "fake-bigger-is-better", "--out", str(tmp_path), "--no-progress")
    assert rc == 0 and "(4 cells computed, 0 reused)" in out and "bigger-wins: supported — size 2 wins" in out
    rc, out, _ = cli(capsys, "lab", "run", "fake-bigger-is-better", "--out", str(tmp_path), "--seeds", "3")
    assert rc == 0 and "(2 cells computed, 4 reused)" in out
    manifest = json.loads((tmp_path / "fake-bigger-is-better" / "manifest.json").read_text())
    assert manifest["command"] == f"archzoo lab run fake-bigger-is-better --seeds 3 --out {tmp_path}"
    rc, out, _ = cli(capsys, "lab", "report", str(tmp_path))
    assert rc == 0 and "bigger-wins: supported" in out and f"index: {tmp_path / 'index.md'}" in out


def test_only_through_the_cli(fake_experiment, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, _ = cli(capsys, "lab", "run", "fake-bigger-is-better", "--only", "size 2", "--out", str(tmp_path))
    assert rc == 0 and "(2 cells computed, 0 reused)" in out and "bigger-wins: incomplete" in out
    manifest = json.loads((tmp_path / "fake-bigger-is-better" / "manifest.json").read_text())
    assert manifest["command"] == f"archzoo lab run fake-bigger-is-better --only 'size 2' --out {tmp_path}"
    rc, out, _ = cli(capsys, "lab", "run", "fake-bigger-is-better", "--out", str(tmp_path))
    assert rc == 0 and "(2 cells computed, 2 reused)" in out and "bigger-wins: supported" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["lab", "run", "long-rang"], "unknown experiment 'long-rang' (did you mean: long-range?)"),
    (["lab", "run", "vanishing-gradients", "--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["lab", "all", "--quick", "--seeds", "-2"], "--seeds must be >= 1, got -2"),
    (["lab", "run", "vanishing-gradients", "--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["lab", "run", "gradient-clipping", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["lab", "run", "attention-and-length", "--only", "multi30k-gru"], "no such cell label; its labels are multi30k-lstm"),
    (["lab", "run", "attention-and-length", "--only", ","], "give at least one cell label"),
    (["lab", "report", "{tmp}"], "holds no lab results"),
    (["lab", "report", "{tmp}/nowhere"], "is not a folder"),
    (["lab", "run", "parameters-vs-length", "--out", "{tmp}/a-file/lab"], "cannot write to folder"),
    (["lab", "frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                               message: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    rc, out, err = cli(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert rc == 2 and out == "" and message in err and err.count("\n") == 1


def test_an_unwritable_out_folder_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write to read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    rc, _, err = cli(capsys, "lab", "run", "parameters-vs-length", "--out", str(locked / "lab"))
    assert rc == 2 and "cannot write to folder" in err


def test_help_does_not_import_the_lab() -> None:
    code = ("import sys; from archzoo.cli.main import build_parser; build_parser(); "
            "print('archzoo.lab' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.slow
def test_a_real_experiment_quick_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """vanishing-gradients --quick: trains eight small models with the Trainer, probes their gradients and
    writes a page with two computed verdicts."""
    rc, out, _ = cli(capsys, "lab", "run", "vanishing-gradients", "--quick", "--out", str(tmp_path))
    assert rc == 0 and "(8 cells computed, 0 reused)" in out
    summary = json.loads((tmp_path / "vanishing-gradients" / "results.json").read_text())
    assert summary["complete"] and [c["verdict"]["outcome"] in ("supported", "refuted", "depends")
                                    for c in summary["claims"]] == [True, True]
    assert (tmp_path / "vanishing-gradients" / "gradient-norms.png").is_file()
    page = (tmp_path / "vanishing-gradients.md").read_text()
    assert "| tinyshakespeare | init | RNN (tanh) |" in page


@pytest.mark.slow
def test_a_cnn_experiment_quick_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """receptive-field --quick: trains four fully convolutional probes on the two-marks images and writes a page
    with a computed verdict, the receptive fields from the calculator and the figure."""
    rc, out, _ = cli(capsys, "lab", "run", "receptive-field", "--quick", "--out", str(tmp_path))
    assert rc == 0 and "(4 cells computed, 0 reused)" in out
    summary = json.loads((tmp_path / "receptive-field" / "results.json").read_text())
    assert summary["complete"] and summary["claims"][0]["verdict"]["outcome"] in ("supported", "refuted", "depends")
    assert [row[1] for row in summary["tables"][0]["rows"]] == ["3", "7", "11", "17"]
    assert (tmp_path / "receptive-field" / "accuracy-by-distance.png").is_file()
