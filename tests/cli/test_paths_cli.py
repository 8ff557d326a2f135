"""Paths, seeds and numbers on the command line are checked when it is parsed, for every command:
a folder or an unwritable place as an output, a folder or a missing file as an input, a --data-dir
that does not exist, a seed out of range, nan. One line each, before any run is loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import cli

# the run folder need not exist: the arguments are refused first
OUTPUTS = [("sample", "--out"), ("translate", "--output"), ("translate", "--show-attention"), ("forecast", "--plot"),
           ("export", "--out")]
INPUTS = [("predict", "--input"), ("sample", "--input"), ("translate", "--input")]
DATA_DIRS = [["eval", "RUN"], ["sample", "RUN"], ["forecast", "RUN"], ["train", "mnist-fast"], ["data", "verify"],
             ["data", "list"]]


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    rc, out, err = cli(capsys, *argv)
    assert rc == 2 and out == "" and err.startswith("archzoo: error: ") and err.count("\n") == 1, (rc, out, err)
    return err


@pytest.mark.parametrize(("command", "flag"), OUTPUTS)
def test_an_output_that_is_a_folder_or_under_a_file(command: str, flag: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for folder in (str(tmp_path), ".", str(tmp_path) + "/"):
        err = one_line_error(capsys, command, "RUN", flag, folder)
        assert f"argument {flag}: {folder} is a folder; give a file name such as" in err
    (tmp_path / "file").write_text("")
    err = one_line_error(capsys, command, "RUN", flag, str(tmp_path / "file" / "x.png"))
    assert "is a file, not a folder" in err


@pytest.mark.parametrize(("command", "flag"), OUTPUTS)
def test_an_output_that_cannot_be_written(command: str, flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as a user without write permission (tests run as root)
    err = one_line_error(capsys, command, "RUN", flag, str(tmp_path / "x.png"))
    assert "(permission denied); choose another path" in err


@pytest.mark.parametrize(("command", "flag"), INPUTS)
def test_an_input_that_is_a_folder_or_missing(command: str, flag: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert f"argument {flag}: {tmp_path} is a folder" in one_line_error(capsys, command, "RUN", flag, str(tmp_path))
    missing = str(tmp_path / "missing.txt")
    assert f"argument {flag}: {missing} does not exist" in one_line_error(capsys, command, "RUN", flag, missing)


@pytest.mark.parametrize("argv", DATA_DIRS)
def test_a_data_dir_that_does_not_exist(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nowhere")
    assert f"argument --data-dir: {missing} does not exist" in one_line_error(capsys, *argv, "--data-dir", missing)
    (tmp_path / "file").write_text("")
    err = one_line_error(capsys, *argv, "--data-dir", str(tmp_path / "file"))
    assert "is a file, not a folder of datasets" in err


def test_fetch_may_create_its_data_dir_but_not_over_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    err = one_line_error(capsys, "data", "fetch", "mnist", "--data-dir", str(tmp_path / "file"))
    assert "is a file, not a folder of datasets" in err


@pytest.mark.parametrize(("value", "message"), [("1e20", "must be an integer in [0, 2^63 - 1], got '1e20'"),
                                                (str(10**20), "must be an integer in [0, 2^63 - 1], got 1000"),
                                                ("-1", "must be an integer in [0, 2^63 - 1], got -1")])
def test_seeds_out_of_range(value: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"argument --seed: {message}" in one_line_error(capsys, "sample", "RUN", "--seed", value)


@pytest.mark.parametrize(("flag", "value"), [("--temperature", "nan"), ("--top-p", "inf")])
def test_numbers_that_are_not_finite(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"argument {flag}: must be a finite number, got {value}" in one_line_error(capsys, "sample", "RUN", flag, value)


def test_nothing_to_predict_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert "nothing to predict; give image files or sentences, or --input FILE" in one_line_error(capsys, "predict", "RUN")
