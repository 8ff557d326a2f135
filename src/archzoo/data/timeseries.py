"""Time series from CSV files: reading with checks, chronological splits, look-back windows, scaling.

A series CSV has a header, a time column first and one column per variable (ETTh1: ``date`` then
HUFL .. OT). Reading refuses a missing column, a non-numeric value (naming the column and line) and
gaps or disorder in the timestamps (listing them), each as a one-line UserError; missing timestamps
are filled only when asked (``fill``: linear interpolation or the previous value), and the series
records which ones were filled.

Splits follow the standard protocol (Zhou et al. 2021, Informer; Zeng et al. 2023, DLinear): split
``[a, b)`` of the rows yields the windows whose *targets* start in ``[a, b)``, so a validation or test
window's input reaches ``seq_len`` rows back into the previous split; a split of ``n`` rows therefore has
``n - horizon + 1`` windows (stride 1), the training split ``n - seq_len - horizon + 1``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archzoo.data.sources import DATASETS, locate
from archzoo.errors import UserError

SPLITS = ("train", "val", "test")
FILLS = ("none", "interpolate", "previous")


@dataclass(frozen=True)
class Series:
    """A table of ``values`` (N, C) float64 under ``columns``, with ``times`` as written in the file."""

    times: list[str]
    columns: list[str]
    values: np.ndarray
    source: str
    filled: tuple[str, ...] = ()  # timestamps that were missing and filled in

    def __len__(self) -> int:
        return len(self.times)


def read_series_csv(path: str | Path, columns: tuple[str, ...] | list[str] = (), fill: str = "none") -> Series:
    """Read a series CSV; ``columns`` picks variables (default: every column after the time column);
    ``fill`` fills missing timestamps (see ``fill_gaps``)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    return parse_series_csv(data, str(path), columns, fill)


def parse_series_csv(data: bytes, path: str, columns: tuple[str, ...] | list[str] = (), fill: str = "none") -> Series:
    """A series CSV's bytes (a file's, or an upload's) as a ``Series``; ``path`` names it in messages."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {e.start}); give a CSV file") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as e:  # a stray carriage return or quote (found by the fuzz tests)
        raise UserError(f"{path} is not a readable CSV ({e}); fix that line of the file") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise UserError(f"{path} is not a series CSV: it needs a header (time column, then value columns) "
                        "and at least one data row")
    header = [h.strip() for h in rows[0]]
    wanted = list(columns) or header[1:]
    missing = [c for c in wanted if c not in header[1:]]
    if missing:
        raise UserError(f"{path} has no column {missing[0]!r} (its columns: {', '.join(header[1:])}); "
                        f"set data.columns to columns it has")
    index = [header.index(c) for c in wanted]
    values = np.empty((len(rows) - 1, len(wanted)), dtype=np.float64)
    times = []
    for r, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise UserError(f"{path} line {r + 2} has {len(row)} fields, the header {len(header)}; fix that line")
        times.append(row[0].strip())
        for k, i in enumerate(index):
            try:
                values[r, k] = float(row[i])
            except ValueError:
                raise UserError(f"{path} column {wanted[k]!r} line {r + 2} holds {row[i]!r}, not a number; "
                                "fix or fill that value") from None
    if not np.isfinite(values).all():
        r, k = map(int, np.argwhere(~np.isfinite(values))[0])
        raise UserError(f"{path} column {wanted[k]!r} line {r + 2} is {values[r, k]}; fill the missing value")
    if fill != "none":
        times, values, filled = fill_gaps(times, values, fill, str(path))
        return Series(times, wanted, values, str(path), filled)
    check_regular(times, str(path))
    return Series(times, wanted, values, str(path))


def _time_index(stamp: str) -> tuple[int, str] | float:
    """Months since year 0 for "YYYY-MM" stamps, else seconds since the epoch (ISO dates and times)."""
    if len(stamp) == 7 and stamp[4] == "-" and stamp[:4].isdigit() and stamp[5:].isdigit():
        return int(stamp[:4]) * 12 + int(stamp[5:]) - 1, "month"
    try:
        return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise UserError(f"timestamp {stamp!r} is neither YYYY-MM nor an ISO date/time; "
                        "write the time column as e.g. 2016-07-01 00:00:00") from None


def _step(times: list[str]) -> tuple[np.ndarray, float]:
    """Each timestamp as a number and the regular step: the most common difference."""
    parsed = [_time_index(t) for t in times]
    t = np.array([p[0] if isinstance(p, tuple) else p for p in parsed], dtype=np.float64)
    values, counts = np.unique(np.diff(t), return_counts=True)
    return t, float(values[np.argmax(counts)])


def _irregular(times: list[str], bad: np.ndarray, source: str, fix: str) -> UserError:
    shown = ", ".join(f"{times[i]} -> {times[i + 1]}" for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return UserError(f"{source} has {len(bad)} gap(s) or out-of-order timestamp(s) (step should be constant): "
                     f"{shown}; {fix}")


def check_regular(times: list[str], source: str) -> None:
    """Timestamps must rise by one constant step (the most common one); gaps and disorder are listed."""
    if len(times) < 2:
        return
    t, step = _step(times)
    bad = np.flatnonzero(np.diff(t) != step)
    if step <= 0 or len(bad):
        raise _irregular(times, bad, source, "fill the missing rows (data.fill = \"interpolate\" or \"previous\") or "
                                             "resample the series to a regular step")


def _stamp(like: str, index: float) -> str:
    """The timestamp at ``index`` (months or epoch seconds, as ``_time_index`` gives) written like ``like``."""
    if len(like) == 7:
        year, month = divmod(int(index), 12)
        return f"{year:04d}-{month + 1:02d}"
    when = dt.datetime.fromtimestamp(index, dt.UTC)
    return when.date().isoformat() if len(like) == 10 else when.strftime("%Y-%m-%d %H:%M:%S")


def fill_gaps(times: list[str], values: np.ndarray, how: str, source: str) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Insert the timestamps missing from a regular series: ``interpolate`` draws a straight line between
    the neighbours (in time), ``previous`` repeats the last value. Disorder, duplicates and gaps that are
    not whole steps are still refused.

    Shapes: values (N, C) -> (N + filled, C).
    """
    if how not in FILLS:
        raise UserError(f"data.fill must be one of {', '.join(FILLS)}, got {how!r}")
    if len(times) < 2:
        return times, values, ()
    t, step = _step(times)
    diffs = np.diff(t)
    missing = np.rint(diffs / step) - 1 if step > 0 else diffs
    bad = np.flatnonzero((diffs <= 0) | (missing < 0) | ~np.isclose((missing + 1) * step, diffs))
    if step <= 0 or len(bad):
        raise _irregular(times, bad, source, "fix the order of the rows; a fill only adds whole missing steps")
    out_times, out_values, filled = [times[0]], [values[0]], []
    for i, gap in enumerate(missing.astype(int)):
        for j in range(1, gap + 1):
            stamp = _stamp(times[i], t[i] + j * step)
            share = j / (gap + 1) if how == "interpolate" else 0.0
            out_times.append(stamp)
            out_values.append(values[i] + share * (values[i + 1] - values[i]))
            filled.append(stamp)
        out_times.append(times[i + 1])
        out_values.append(values[i + 1])
    return out_times, np.stack(out_values), tuple(filled)


def load_series(dataset: str, columns: tuple[str, ...] | list[str] = (), data_dir: str | Path | None = None,
                fill: str = "none") -> Series:
    """A catalogued series dataset (checksum-verified) or a CSV file given by path."""
    if dataset not in DATASETS and (dataset.endswith(".csv") or Path(dataset).expanduser().is_file()):
        path = Path(dataset).expanduser()
        if not path.is_file():
            raise UserError(f"CSV file {dataset} does not exist; give a catalogued series dataset or a CSV path")
        return read_series_csv(path, columns, fill)
    spec = DATASETS.get(dataset)
    if spec.meta.get("format") != "series-csv":
        raise UserError(f"dataset {dataset!r} is not a time series; choose one of: "
                        f"{', '.join(n for n in DATASETS.names() if DATASETS.get(n).meta.get('format') == 'series-csv')}"
                        " or give a CSV path")
    path = locate(spec, data_dir, [str(spec.meta["file"])])[str(spec.meta["file"])]
    return read_series_csv(path, columns, fill)


def split_borders(n_rows: int, borders: dict[str, list[int]] | None,
                  fractions: tuple[float, float]) -> dict[str, tuple[int, int]]:
    """Row ranges [a, b) of train, val and test: the dataset's standard borders, or for a user CSV the
    first ``fractions[0]`` of the rows for training, the next ``fractions[1]`` for validation, the rest test."""
    if borders:
        return {s: (int(borders[s][0]), int(borders[s][1])) for s in SPLITS}
    train_end = int(n_rows * fractions[0])
    val_end = train_end + int(n_rows * fractions[1])
    return {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, n_rows)}


def window_starts(split: str, rows: tuple[int, int], seq_len: int, horizon: int) -> np.ndarray:
    """First input row of every window of a split, stride 1. Training windows lie inside the split;
    val/test windows' targets start at every row of the split with room for the horizon, their inputs
    reach ``seq_len`` rows back."""
    a, b = rows
    first = a if split == "train" else a - seq_len
    last = b - seq_len - horizon  # the window [last, last + seq_len + horizon) ends at b
    return np.arange(first, last + 1) if last >= first and first >= 0 else np.arange(0)


@dataclass(frozen=True)
class Scaler:
    """Per-variable standardisation, (x - mean) / std with the population std (sklearn's StandardScaler),
    fitted on the training rows only; ``log`` first takes log(x) (airline passengers: multiplicative
    seasonality becomes additive)."""

    mean: np.ndarray
    std: np.ndarray
    log: bool = False

    @classmethod
    def fit(cls, values: np.ndarray, log: bool = False) -> Scaler:
        if log and (values <= 0).any():
            raise UserError("data.transform='log' needs positive values; the series has zeros or negatives; "
                            "use data.transform='none'")
        x = np.log(values) if log else values
        std = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(std > 0, std, 1.0), log)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((np.log(values) if self.log else values) - self.mean) / self.std

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        x = scaled * self.std + self.mean
        return np.exp(x) if self.log else x
