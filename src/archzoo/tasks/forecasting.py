"""Time-series forecasting: look-back windows in, the next ``horizon`` steps out; MSE/MAE and RMSE/MAPE.

Models take x (B, L, C) and return the forecast (B, H, C) (models/forecast.py). The series is
standardised per variable with statistics of the training rows only (optionally after a log), the loss
is the MSE on that scale, and the report gives MSE and MAE on the standardised scale (the ETTh1
protocol of Informer, Autoformer, DLinear and PatchTST) and RMSE, MAE and MAPE on the original scale
(the airline protocol). Every window of a split counts once, the last incomplete batch included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archzoo.data.sources import DATASETS
from archzoo.data.timeseries import FILLS, SPLITS, Scaler, load_series, split_borders, window_starts
from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text
from archzoo.tasks.base import Task, check_count, model_device, register_task

TRANSFORMS = ("none", "log")


@dataclass(frozen=True)
class ForecastingConfig:
    dataset: str = "etth1"  # a catalogued series (archzoo data list) or the path of a CSV file
    columns: tuple[str, ...] = ()  # the variables, input and output; () = every column (multivariate)
    seq_len: int = 96  # look-back L
    horizon: int = 96  # H steps forecast at once
    transform: str = "none"  # none | log (before standardising; metrics stay on the original scale)
    split: tuple[float, float] = (0.7, 0.1)  # CSV files only: train and val fractions of the rows, in time order
    fill: str = "none"  # missing timestamps: none (refused) | interpolate (linear in time) | previous (last value)

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.horizon < 1:
            raise UserError(f"data.seq_len and data.horizon must be >= 1, got {self.seq_len} and {self.horizon}")
        if self.transform not in TRANSFORMS:
            raise UserError(f"data.transform must be one of {', '.join(TRANSFORMS)}, got {self.transform!r}")
        if self.fill not in FILLS:
            raise UserError(f"data.fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if len(self.split) != 2 or min(self.split) <= 0 or sum(self.split) >= 1:
            raise UserError(f"data.split must be two fractions > 0 with sum < 1 (train, val), got {list(self.split)}")


def mape(pred: np.ndarray, true: np.ndarray) -> float | None:
    """Mean absolute percentage error, 100 mean(|ŷ - y| / |y|); None where some |y| is below 1% of the
    largest (ETTh1's load variables cross zero), since a near-zero truth makes the figure meaningless."""
    scale = np.abs(true)
    if scale.min() < 0.01 * scale.max():
        return None
    return float(np.mean(np.abs(pred - true) / scale) * 100)


@register_task("forecasting")
class Forecasting(Task):
    Config = ForecastingConfig
    primary_metric = "mse"
    higher_is_better = False
    verbs = ("forecast",)

    def __init__(self, cfg: ForecastingConfig, data_dir: str | Path | None = None):
        super().__init__(cfg, data_dir)
        self.series = load_series(cfg.dataset, cfg.columns, data_dir, cfg.fill)
        if self.series.filled:
            shown = ", ".join(self.series.filled[:5]) + (" ..." if len(self.series.filled) > 5 else "")
            how = "by linear interpolation" if cfg.fill == "interpolate" else "with the previous value"
            self.notices.append(f"filled {len(self.series.filled)} missing timestamp(s) of {cfg.dataset} {how}: {shown}")
        meta = DATASETS.get(cfg.dataset).meta if cfg.dataset in DATASETS else {}
        self.season = int(meta.get("season", 1))  # type: ignore[call-overload]
        n = len(self.series)
        self.borders = split_borders(n, meta.get("borders"), cfg.split)  # type: ignore[arg-type]
        if self.borders["test"][1] > n:
            raise UserError(f"{self.series.source} has {n} rows but {cfg.dataset}'s test split ends at row "
                            f"{self.borders['test'][1]}; the file is truncated: fetch it again")
        self._check_spans()
        a, b = self.borders["train"]
        self.scaler = Scaler.fit(self.series.values[a:b], cfg.transform == "log")
        self.data = torch.tensor(self.scaler.transform(self.series.values), dtype=torch.float32)  # (rows, C)
        self.starts = {s: torch.from_numpy(window_starts(s, self.borders[s], cfg.seq_len, cfg.horizon))
                       for s in SPLITS}
        self.device = torch.device("cpu")

    def _check_spans(self) -> None:
        """Each split must hold at least one window; say which setting to change."""
        cfg, times = self.cfg, self.series.times
        for split in ("test", "val", "train"):  # a horizon too long for the test span is the usual mistake
            a, b = self.borders[split]
            span = f"{b - a} rows, {times[a]} .. {times[b - 1]}" if b > a else "no rows"
            if split == "train" and cfg.seq_len + cfg.horizon > b - a:
                raise UserError(f"data.seq_len + data.horizon = {cfg.seq_len + cfg.horizon} is longer than the training "
                                f"split of {cfg.dataset} ({span}); choose a shorter look-back or horizon")
            if split != "train" and cfg.horizon > b - a:
                raise UserError(f"data.horizon={cfg.horizon} is longer than the {split} split of {cfg.dataset} "
                                f"({span}); choose data.horizon <= {b - a}")
            if split != "train" and a - cfg.seq_len < 0:
                raise UserError(f"data.seq_len={cfg.seq_len} reaches before the first row from the {split} split of "
                                f"{cfg.dataset} (it starts at row {a}); choose data.seq_len <= {a}")

    # -- windows -----------------------------------------------------------------------------
    def windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, L, C) rows [s, s + L) and targets (B, H, C) rows [s + L, s + L + H) of each start s."""
        rows = starts.to(self.data.device)[:, None] + torch.arange(self.cfg.seq_len + self.cfg.horizon,
                                                                   device=self.data.device)
        window = self.data[rows]
        return window[:, :self.cfg.seq_len], window[:, self.cfg.seq_len:]

    # -- the trainer contract ----------------------------------------------------------------
    def model_args(self) -> dict[str, Any]:
        return {"seq_len": self.cfg.seq_len, "horizon": self.cfg.horizon, "num_channels": len(self.series.columns)}

    def has_split(self, name: str) -> bool:
        return name in SPLITS

    def num_train_examples(self) -> int:
        return len(self.starts["train"])

    def to(self, device: torch.device) -> None:
        self.device = device
        self.data = self.data.to(device)

    def train_batch(self, indices: torch.Tensor, shard: slice, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows(self.starts["train"][indices[shard].cpu()])

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(model(x).float(), y)

    @torch.no_grad()
    def split_forecasts(self, model: nn.Module, split: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Forecasts and targets (windows, H, C) of every window of a split, standardised scale."""
        if split not in SPLITS:
            raise UserError(f"no {split!r} split; choose one of {', '.join(SPLITS)}")
        model.eval()
        outputs, targets = [], []
        starts = self.starts[split]
        for i in range(0, len(starts), batch_size):  # the last, incomplete batch included
            x, y = self.windows(starts[i:i + batch_size])
            outputs.append(model(x).float())
            targets.append(y)
        return torch.cat(outputs), torch.cat(targets)

    def evaluate(self, model: nn.Module, split: str, batch_size: int) -> dict[str, float]:
        """MSE and MAE over every window, step and variable of a split, on the standardised scale."""
        pred, true = self.split_forecasts(model, split, batch_size)
        return {"mse": F.mse_loss(pred, true).item(), "mae": F.l1_loss(pred, true).item()}

    def original_scale(self, values: torch.Tensor) -> np.ndarray:
        return self.scaler.inverse(values.detach().cpu().double().numpy())

    def report(self, model: nn.Module, out_dir: Path, batch_size: int) -> dict[str, Any]:
        pred, true = self.split_forecasts(model, "test", batch_size)
        p, t = self.original_scale(pred), self.original_scale(true)
        a, b = self.borders["test"]
        result: dict[str, Any] = {
            "split": "test", "mse": F.mse_loss(pred, true).item(), "mae": F.l1_loss(pred, true).item(),
            "rmse_original": float(np.sqrt(np.mean((p - t) ** 2))), "mae_original": float(np.mean(np.abs(p - t))),
            "mape_original": mape(p, t),
            "windows": len(true), "seq_len": self.cfg.seq_len, "horizon": self.cfg.horizon,
            "columns": self.series.columns, "test_rows": [a, b],
            "test_span": [self.series.times[a], self.series.times[b - 1]],
            "filled_points": len(self.series.filled),
            "filled_in_test": len(set(self.series.filled).intersection(self.series.times[a:b])),
        }
        atomic_write_text(out_dir / "eval.json", json.dumps(result, indent=2) + "\n")
        self.plot(model, out_dir / "forecast.png")
        return result

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        mape_text = "" if result["mape_original"] is None else f", MAPE {result['mape_original']:.2f}%"
        return [f"{self.cfg.dataset} test ({result['windows']} windows, look-back {result['seq_len']}, horizon "
                f"{result['horizon']}): MSE {result['mse']:.4f}, MAE {result['mae']:.4f} (standardised)",
                f"original scale: RMSE {result['rmse_original']:.4f}, MAE {result['mae_original']:.4f}{mape_text}",
                *([f"{result['filled_points']} filled timestamp(s) in the series, {result['filled_in_test']} of them in "
                   "the test split"] if result.get("filled_points") else [])]

    # -- forecasts for people ----------------------------------------------------------------
    @torch.no_grad()
    def forecast(self, model: nn.Module, series: Any = None, horizon: int | None = None, split: str = "test",
                 window: int = -1, future: bool = False) -> Forecast:
        """One forecast on the original scale of the series.

        With ``series`` (rows (N, C) or, for one variable, (N,): a numpy array, tensor or nested list in
        the variables' order, N >= the look-back): the forecast of the steps after its last row. Without:
        window ``window`` of ``split``, with the truth beside it, or (``future``) the steps after the last
        row of the data. ``horizon`` defaults to the model's; a longer one feeds the forecasts back in as
        inputs, ``horizon`` at a time (iterated multi-step forecasting).
        Shapes: history (L, C), forecast (horizon, C), truth (horizon, C) or None.
        """
        length, trained = self.cfg.seq_len, self.cfg.horizon
        horizon = trained if horizon is None else check_count("horizon", horizon, 1, 100 * trained,
                                                               "forecast at most 100 x the trained horizon")
        columns, times = self.series.columns, self.series.times
        truth, forecast_times = None, []
        if series is not None:
            history = user_series(series, length, columns)
            history_times = [f"-{length - i}" for i in range(length)]
            start = None
        else:
            if future:
                start = len(self.series) - length
            else:
                if split not in SPLITS:
                    raise UserError(f"no {split!r} split; choose one of {', '.join(SPLITS)}")
                starts = self.starts[split]
                if isinstance(window, bool) or not isinstance(window, int) or not -len(starts) <= window < len(starts):
                    raise UserError(f"--window {window} is out of range: the {split} split has {len(starts)} windows "
                                    f"(0 .. {len(starts) - 1}, or -1 for the last)")
                start = int(starts[window])
                end = start + length
                truth = self.series.values[end:end + horizon]
                forecast_times = times[end:end + horizon]
            history = self.series.values[start:start + length]
            history_times = times[start:start + length]
        model.eval()
        device = model_device(model)
        x = torch.tensor(self.scaler.transform(history), dtype=torch.float32, device=device)[None]
        steps = []
        while sum(len(s) for s in steps) < horizon:
            y = model(x).float()
            steps.append(y[0])
            x = torch.cat([x, y], dim=1)[:, -length:]  # the forecasts become the newest inputs
        forecast = self.original_scale(torch.cat(steps)[:horizon])
        return Forecast(self.cfg.dataset, columns, list(history_times), history, forecast,
                        list(forecast_times), truth, start)

    def plot(self, model: nn.Module, path: Path, split: str = "test", window: int = -1, future: bool = False,
             channel: str | None = None, title: str = "") -> Path:
        return self.forecast(model, split=split, window=window, future=future).plot(
            path, channel, title or f"{self.cfg.dataset}: look-back {self.cfg.seq_len}, horizon {self.cfg.horizon}")


def user_series(series: Any, length: int, columns: list[str]) -> np.ndarray:
    """The last ``length`` rows (L, C) of a user's series, float64, checked against the run's variables."""
    try:
        values = np.asarray(series.detach().cpu() if isinstance(series, torch.Tensor) else series, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"a series must be numbers, rows (N, {len(columns)}) in the order {', '.join(columns)}; got "
                        f"{type(series).__name__}") from None
    if values.ndim == 1 and len(columns) == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise UserError(f"the run forecasts {len(columns)} variable(s) ({', '.join(columns)}): give rows (N, "
                        f"{len(columns)}), got an array of shape {values.shape}")
    if len(values) < length:
        raise UserError(f"the model looks back {length} steps; give at least {length} rows, got {len(values)}")
    if not np.isfinite(values[-length:]).all():
        raise UserError("the last look-back rows of the series hold NaN or infinite values; fill them first")
    return values[-length:]


@dataclass
class Forecast:
    """One forecast (``Run.forecast``) on the original scale: the look-back ``history`` (L, C), the
    ``forecast`` (H, C) and, when the run's own data has them, the ``truth`` (H, C) and the times;
    ``start`` is the history's first row in the run's data (None for a user's series)."""

    dataset: str
    columns: list[str]
    history_times: list[str]
    history: np.ndarray
    forecast: np.ndarray
    forecast_times: list[str]
    truth: np.ndarray | None
    start: int | None

    def channel_index(self, channel: str | None) -> int:
        if channel is None:
            return len(self.columns) - 1  # the target is the last column by convention (ETTh1's OT)
        if channel not in self.columns:
            raise UserError(f"--channel {channel!r} is not a variable of this run; choose one of {', '.join(self.columns)}")
        return self.columns.index(channel)

    def lines(self, channel: str | None = None) -> list[str]:
        """A table of time, forecast (and truth) of one variable, then its errors when the truth is known."""
        k = self.channel_index(channel)
        times = self.forecast_times or [f"+{h + 1}" for h in range(len(self.forecast))]
        truth = self.truth
        out = ["time\tforecast" + ("\ttruth" if truth is not None else "")]
        out += [f"{t}\t{self.forecast[h, k]:.4f}" + (f"\t{truth[h, k]:.4f}" if truth is not None else "")
                for h, t in enumerate(times)]
        if truth is not None:
            error = self.forecast[:, k] - truth[:, k]
            out.append(f"{self.columns[k]}: RMSE {np.sqrt(np.mean(error ** 2)):.4f}, MAE {np.mean(np.abs(error)):.4f} "
                       "(original scale)")
        return out

    def plot(self, path: Path, channel: str | None = None, title: str = "") -> Path:
        """History, forecast and truth of one variable in one PNG."""
        from archzoo.viz.plots import plot_forecast

        k = self.channel_index(channel)
        return plot_forecast(self.history_times + self.forecast_times, self.history[:, k], self.forecast[:, k],
                             None if self.truth is None else self.truth[:, k], Path(path),
                             title or f"{self.dataset} {self.columns[k]}")
