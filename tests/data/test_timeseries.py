"""Series CSVs (data/timeseries.py): reading and its one-line errors, split and window arithmetic of the
ETTh1 protocol, and the scaler fitted on the training rows only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from archzoo.data.timeseries import Scaler, load_series, read_series_csv, split_borders, window_starts
from archzoo.errors import UserError
from archzoo.tasks.forecasting import Forecasting, ForecastingConfig
from helpers import SHARED_DATA

needs_ett = pytest.mark.skipif(not (SHARED_DATA / "ett-small").is_dir(), reason="../shared/data/ett-small not staged")
ETT_BORDERS = {"train": [0, 8640], "val": [8640, 11520], "test": [11520, 14400]}


def write_csv(path: Path, rows: list[str], header: str = "date,a,b") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def hourly(n: int, start: int = 0) -> list[str]:
    return [f"2020-01-{1 + (start + i) // 24:02d} {(start + i) % 24:02d}:00:00" for i in range(n)]


def one_line_error(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def test_reads_columns_in_the_requested_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", [f"{t},{i},{10 * i}" for i, t in enumerate(hourly(5))])
    series = read_series_csv(path, ["b", "a"])
    assert series.columns == ["b", "a"] and series.times[0] == "2020-01-01 00:00:00"
    np.testing.assert_array_equal(series.values[:, 0], [0, 10, 20, 30, 40])
    assert read_series_csv(path).columns == ["a", "b"]


def test_missing_column_names_it_and_the_fix(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", [f"{t},1,2" for t in hourly(3)])
    with pytest.raises(UserError) as excinfo:
        read_series_csv(path, ["OT"])
    message = one_line_error(excinfo)
    assert "no column 'OT'" in message and "a, b" in message and "data.columns" in message


def test_non_numeric_value_names_column_and_line(tmp_path: Path) -> None:
    rows = [f"{t},1,2" for t in hourly(4)]
    rows[2] = rows[2].replace(",2", ",n/a")
    with pytest.raises(UserError) as excinfo:
        read_series_csv(write_csv(tmp_path / "s.csv", rows))
    message = one_line_error(excinfo)
    assert "column 'b' line 4" in message and "'n/a'" in message


def test_gaps_in_timestamps_are_listed(tmp_path: Path) -> None:
    times = hourly(10)
    rows = [f"{t},1,2" for i, t in enumerate(times) if i not in (3, 7)]
    with pytest.raises(UserError) as excinfo:
        read_series_csv(write_csv(tmp_path / "s.csv", rows))
    message = one_line_error(excinfo)
    assert "2 gap(s)" in message
    assert "2020-01-01 02:00:00 -> 2020-01-01 04:00:00" in message and "2020-01-01 06:00:00 -> 2020-01-01 08:00:00" in message
    # monthly stamps count in months, so months of different lengths are not gaps, a missing month is
    months = [f"1950-{m:02d}" for m in range(1, 13)]
    read_series_csv(write_csv(tmp_path / "m.csv", [f"{t},1,2" for t in months]))
    with pytest.raises(UserError, match="1950-05 -> 1950-07"):
        read_series_csv(write_csv(tmp_path / "m.csv", [f"{t},1,2" for t in months if t != "1950-06"]))


def test_window_counts_of_the_etth1_protocol() -> None:
    """n - horizon + 1 windows in val and test (inputs reach one look-back back), n - L - H + 1 in train."""
    borders = split_borders(17_420, ETT_BORDERS, (0.7, 0.1))
    for seq_len, horizon in ((96, 96), (336, 96), (336, 720), (96, 720)):
        starts = {s: window_starts(s, borders[s], seq_len, horizon) for s in borders}
        assert len(starts["train"]) == 8640 - seq_len - horizon + 1
        assert len(starts["val"]) == len(starts["test"]) == 2880 - horizon + 1
        assert starts["train"][0] == 0 and starts["train"][-1] + seq_len + horizon == 8640
        assert starts["val"][0] == 8640 - seq_len and starts["val"][-1] + seq_len + horizon == 11520
        assert starts["test"][0] + seq_len == 11520 and starts["test"][-1] + seq_len + horizon == 14400
    assert len(window_starts("test", borders["test"], 96, 96)) == 2785  # the staged README's count


def test_user_csv_split_fractions() -> None:
    assert split_borders(1000, None, (0.7, 0.1)) == {"train": (0, 700), "val": (700, 800), "test": (800, 1000)}


def test_scaler_standardises_and_inverts() -> None:
    values = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    scaler = Scaler.fit(values)
    np.testing.assert_allclose(scaler.mean, [3.0, 5.0])
    np.testing.assert_allclose(scaler.std, [np.sqrt(8 / 3), 1.0])  # population std; a constant column keeps 1
    np.testing.assert_allclose(scaler.inverse(scaler.transform(values)), values)
    log = Scaler.fit(values, log=True)
    np.testing.assert_allclose(log.inverse(log.transform(values)), values)
    with pytest.raises(UserError, match="positive"):
        Scaler.fit(np.array([[0.0], [1.0]]), log=True)


@needs_ett
def test_etth1_scaler_is_fitted_on_the_training_rows_only() -> None:
    task = Forecasting(ForecastingConfig(dataset="etth1"))
    raw = load_series("etth1").values
    np.testing.assert_allclose(task.scaler.mean, raw[:8640].mean(0))
    np.testing.assert_allclose(task.scaler.std, raw[:8640].std(0))
    assert not np.allclose(task.scaler.mean, raw[:14400].mean(0))
    train = task.data[:8640].double()
    torch.testing.assert_close(train.mean(0), torch.zeros(7, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(0, unbiased=False), torch.ones(7, dtype=torch.float64), atol=1e-5, rtol=0)
    assert task.data[11520:14400, -1].mean() < -1.0  # OT in the test months is far from the training mean


@needs_ett
def test_airline_and_sunspot_splits() -> None:
    air = Forecasting(ForecastingConfig(dataset="airline-passengers", seq_len=24, horizon=12))
    a, b = air.borders["test"]
    assert (air.series.times[a], air.series.times[b - 1]) == ("1960-01", "1960-12")
    assert [len(air.starts[s]) for s in ("train", "val", "test")] == [120 - 24 - 12 + 1, 1, 1]
    sun = Forecasting(ForecastingConfig(dataset="monthly-sunspots", seq_len=132, horizon=12))
    assert [sun.series.times[sun.borders[s][0]] for s in ("train", "val", "test")] == ["1749-01", "1914-01", "1937-01"]
    assert sun.borders["test"][1] == len(sun.series) == 2820


# ----------------------------------------------------------------------------- filling gaps


def test_missing_timestamps_are_filled_only_when_asked(tmp_path: Path) -> None:
    rows = ["2020-01-01,1,10", "2020-01-02,2,20", "2020-01-05,5,50", "2020-01-06,6,60"]  # 3rd and 4th missing
    path = write_csv(tmp_path / "s.csv", rows)
    with pytest.raises(UserError) as info:
        read_series_csv(path)
    assert 'data.fill = "interpolate"' in one_line_error(info)
    series = read_series_csv(path, fill="interpolate")
    assert series.times == [f"2020-01-0{d}" for d in range(1, 7)] and series.filled == ("2020-01-03", "2020-01-04")
    np.testing.assert_allclose(series.values[:, 0], [1, 2, 3, 4, 5, 6])  # a straight line in time
    np.testing.assert_allclose(series.values[:, 1], [10, 20, 30, 40, 50, 60])
    previous = read_series_csv(path, fill="previous")
    np.testing.assert_array_equal(previous.values[:, 0], [1, 2, 2, 2, 5, 6])


def test_fill_keeps_the_stamp_format_and_refuses_disorder(tmp_path: Path) -> None:
    months = write_csv(tmp_path / "m.csv", ["1959-10,0", "1959-11,1", "1960-02,4"], header="month,x")
    assert read_series_csv(months, fill="interpolate").times == ["1959-10", "1959-11", "1959-12", "1960-01", "1960-02"]
    hours = hourly(5)
    path = write_csv(tmp_path / "h.csv", [f"{t},{i},0" for i, t in enumerate(hours) if i != 2])
    assert read_series_csv(path, fill="interpolate").times == hours
    shuffled = write_csv(tmp_path / "o.csv", [f"{t},0,0" for t in [hours[0], hours[2], hours[1], hours[3]]])
    with pytest.raises(UserError, match="fix the order of the rows"):
        read_series_csv(shuffled, fill="interpolate")
    half_step = write_csv(tmp_path / "x.csv", ["2020-01-01 00:00:00,0,0", "2020-01-01 01:00:00,0,0",
                                                 "2020-01-01 02:00:00,0,0", "2020-01-01 02:30:00,0,0"])
    with pytest.raises(UserError, match="a fill only adds whole missing steps"):
        read_series_csv(half_step, fill="previous")
    with pytest.raises(UserError, match="data.fill must be one of none, interpolate, previous"):
        ForecastingConfig(fill="zero")


@pytest.mark.skipif(not (SHARED_DATA / "daily-min-temperatures").is_dir(),
                    reason="../shared/data/daily-min-temperatures not staged")
def test_daily_min_temperatures_needs_and_gets_a_fill() -> None:
    with pytest.raises(UserError, match="2 gap.*1984-12-30 -> 1985-01-01.*1988-12-30 -> 1989-01-01.*data.fill"):
        load_series("daily-min-temperatures")
    task = Forecasting(ForecastingConfig(dataset="daily-min-temperatures", seq_len=56, horizon=7, fill="interpolate"))
    assert len(task.series) == 3652 and task.series.filled == ("1984-12-31", "1988-12-31")
    assert task.notices == ["filled 2 missing timestamp(s) of daily-min-temperatures by linear interpolation: "
                            "1984-12-31, 1988-12-31"]
    times = task.series.times
    assert [times[a] for a, _ in task.borders.values()] == ["1981-01-01", "1989-01-01", "1990-01-01"]
    assert times[-1] == "1990-12-31"
    i = times.index("1984-12-31")
    assert task.series.values[i, 0] == pytest.approx((task.series.values[i - 1, 0] + task.series.values[i + 1, 0]) / 2)
