"""``archzoo train`` -> ``archzoo forecast`` end to end on a small real subset of ETTh1, and bad series
input through the CLI: one line naming the problem and the fix, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.cli.main import main
from helpers import SHARED_DATA

ETTH1 = SHARED_DATA / "ett-small" / "ETTh1.csv"
pytestmark = pytest.mark.skipif(not ETTH1.is_file(), reason="../shared/data/ett-small not staged")


def subset(tmp_path: Path, rows: int = 1500, edit=None) -> Path:  # noqa: ANN001
    """The header and the first ``rows`` rows of ETTh1, optionally edited, as the user's own CSV."""
    lines = ETTH1.read_text().splitlines()[:rows + 1]
    if edit is not None:
        lines = edit(lines)
    path = tmp_path / "etth1-subset.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archzoo: error: ") and "Traceback" not in err
    return err


def test_train_then_forecast_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv, run = subset(tmp_path), tmp_path / "run"
    assert main(["train", "etth1-linear", "--dataset", str(csv), "--set", "data.seq_len=96", "--set", "data.horizon=24",
                 "--epochs", "2", "--out", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "linear: 2,328 parameters | forecasting on" in out and "test: mse=" in out
    assert (run / "best.safetensors").is_file() and (run / "eval.json").is_file() and (run / "forecast.png").is_file()
    plot = tmp_path / "plots" / "f.png"
    (tmp_path / "plots").mkdir()
    assert main(["forecast", str(run), "--plot", str(plot), "--channel", "HUFL"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"linear on {csv}, HUFL: 24 steps from 2016-") and out[0].endswith("(test window -1)")
    assert out[1] == "time\tforecast\ttruth" and len(out) == 2 + 24 + 2 and out[-1] == f"wrote {plot}"
    assert out[2].startswith("2016-08-") and out[-2].startswith("HUFL: RMSE ")
    assert plot.stat().st_size > 10_000
    # past the end of the data: no truth to compare with
    assert main(["forecast", str(run), "--future"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "time\tforecast" and lines[2].startswith("+1\t") and len(lines) == 2 + 24


def test_forecast_bad_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--model", "naive_last", "--set", "task='forecasting'", "--dataset", str(subset(tmp_path)),
                 "--set", "data.seq_len=48", "--set", "data.horizon=12", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert "--window 500 is out of range: the test split has 289 windows" in error_line(
        capsys, ["forecast", str(run), "--window", "500"])
    assert "--channel 'XX' is not a variable of this run; choose one of HUFL" in error_line(
        capsys, ["forecast", str(run), "--channel", "XX"])


def test_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = error_line(capsys, ["train", "etth1-linear", "--set", "data.columns=['OT', 'temperature']", "--dry-run"])
    assert "has no column 'temperature' (its columns: HUFL, HULL, MUFL, MULL, LUFL, LULL, OT); set data.columns" in err


def test_non_numeric_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def corrupt(lines: list[str]) -> list[str]:
        fields = lines[100].split(",")
        fields[3] = "missing"
        lines[100] = ",".join(fields)
        return lines

    err = error_line(capsys, ["train", "etth1-linear", "--dataset", str(subset(tmp_path, edit=corrupt)), "--dry-run"])
    assert "column 'MUFL' line 101 holds 'missing', not a number; fix or fill that value" in err


def test_gaps_in_timestamps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = subset(tmp_path, edit=lambda lines: lines[:50] + lines[53:])  # rows 50..52 (3 hours) removed
    err = error_line(capsys, ["train", "etth1-linear", "--dataset", str(csv), "--dry-run"])
    assert "1 gap(s)" in err and "2016-07-03 00:00:00 -> 2016-07-03 04:00:00" in err and "fill the missing rows" in err


def test_horizon_longer_than_the_test_span(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_line(capsys, ["train", "airline-linear", "--set", "data.horizon=24", "--dry-run"])
    assert "data.horizon=24 is longer than the test split of airline-passengers (12 rows, 1960-01 .. 1960-12); " \
           "choose data.horizon <= 12" in err


def test_forecast_needs_a_forecasting_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in error_line(capsys, ["forecast", str(tmp_path / "nothing")])
