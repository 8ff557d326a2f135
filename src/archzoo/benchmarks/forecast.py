"""Forecasting benchmarks: ETTh1 multivariate at the four standard horizons and airline passengers 1960,
every learned model reported beside the naive baselines (computed in the same run, on the same windows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archzoo.benchmarks.base import register_benchmark
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer

ETTH1_NEURAL = ("etth1-rnn", "etth1-lstm", "etth1-gru", "etth1-transformer")
NEURAL_BUDGET = 120.0  # seconds of training per neural run at most (they also stop early on validation)


def forecast_run(work_dir: Path, preset: str | None, overrides: list[str]) -> dict[str, Any]:
    """Train (or, for a parameter-free baseline, only evaluate) one configuration; its test figures."""
    cfg = resolve_config(preset, overrides)
    result = Trainer(cfg, work_dir, progress=False, verbose=False, overwrite=True).fit()
    assert result.test is not None
    test = result.test
    return {"model": cfg.model.name, "preset": preset, "overrides": overrides, "mse": round(test["mse"], 4),
            "mae": round(test["mae"], 4), "rmse_original": round(test["rmse_original"], 4),
            "mape_original": None if test["mape_original"] is None else round(test["mape_original"], 3),
            "windows": test["windows"], "status": result.status, "steps": result.step,
            "train_seconds": round(result.train_seconds, 1),
            "best_val_mse": None if not result.best else round(result.best["mse"], 4), "run_dir": str(work_dir)}


def baseline_overrides(dataset: str, seq_len: int, horizon: int, model: str, **args: Any) -> list[str]:
    return ["task='forecasting'", f"model.name={model!r}", f"data.dataset={dataset!r}", f"data.seq_len={seq_len}",
            f"data.horizon={horizon}", "train.batch_size=1",  # nothing is trained; any batch fits the data
            *[f"model.args.{k}={v!r}" for k, v in args.items()]]


def baseline_rows(work_dir: Path, dataset: str, seq_len: int, horizon: int, period: int) -> list[dict[str, Any]]:
    """The naive last value and the seasonal naive forecast (season ``period``) on the same windows."""
    return [forecast_run(work_dir / "naive_last", None, baseline_overrides(dataset, seq_len, horizon, "naive_last")),
            forecast_run(work_dir / "seasonal_naive", None,
                         baseline_overrides(dataset, seq_len, horizon, "seasonal_naive", period=period))]


def etth1_rows(work_dir: Path, horizon: int) -> list[dict[str, Any]]:
    """naive_last, seasonal_naive (24 h), linear (NLinear) and the four neural forecasters, look-back 336."""
    rows = baseline_rows(work_dir / f"h{horizon}", "etth1", 336, horizon, 24)
    rows.append(forecast_run(work_dir / f"h{horizon}-linear", "etth1-linear", [f"data.horizon={horizon}"]))
    for preset in ETTH1_NEURAL:
        rows.append(forecast_run(work_dir / f"h{horizon}-{preset}", preset,
                                 [f"data.horizon={horizon}", f"train.time_budget={NEURAL_BUDGET}"]))
    for row in rows:
        row["horizon"] = horizon
    return rows


@register_benchmark("etth1-h96", "best_test_mse", 0.38, "<=",
                    "ETTh1 multivariate, look-back 336, horizon 96, standard split and scaler, 2,785 test windows: "
                    "test MSE (standardised) of the best archzoo model; every model reported beside naive last "
                    f"value and seasonal naive; neural runs early-stopped on validation, at most {NEURAL_BUDGET:.0f} s each")
def etth1_h96(work_dir: Path) -> dict[str, Any]:
    rows = etth1_rows(work_dir, 96)
    best = min(rows, key=lambda r: r["mse"])
    return {"value": best["mse"], "best_model": best["model"], "models": rows}


@register_benchmark("etth1-horizons", "worst_neural_over_naive_mse", 1.0, "<=",
                    "ETTh1 multivariate, look-back 336, horizons 192, 336 and 720 (96: etth1-h96): every model's "
                    "test MSE; the value is the largest ratio of a neural forecaster's MSE to the naive last value's "
                    "at the same horizon (below 1: every neural model beats it everywhere)")
def etth1_horizons(work_dir: Path, horizons: tuple[int, ...] = (192, 336, 720)) -> dict[str, Any]:
    rows, ratios = [], []
    for horizon in horizons:
        part = etth1_rows(work_dir, horizon)
        naive = part[0]["mse"]
        ratios += [r["mse"] / naive for r in part[3:]]
        rows += part
    return {"value": round(max(ratios), 4), "models": rows}


@register_benchmark("airline-1960", "best_learned_rmse", 50.7, "<=",
                    "airline passengers: the 12 months of 1960 forecast from the 36 months before; RMSE in thousands "
                    "of passengers (original scale) of the best learned model (linear, gru_forecaster; log "
                    "transform, trained on windows ending by 1958, early stopping on 1959) beside naive last value "
                    "(103.0) and seasonal naive (50.7)")
def airline_1960(work_dir: Path) -> dict[str, Any]:
    rows = baseline_rows(work_dir, "airline-passengers", 36, 12, 12)
    learned = [forecast_run(work_dir / preset, preset, []) for preset in ("airline-linear", "airline-gru")]
    best = min(learned, key=lambda r: r["rmse_original"])
    return {"value": best["rmse_original"], "best_model": best["model"], "best_mape": best["mape_original"],
            "models": rows + learned}


@register_benchmark("sunspots-1937", "learned_rmse", 31.92, "<=",
                    "monthly sunspots, archzoo's split (test 1937-1983, 553 windows): the next 12 months from the "
                    "264 before; RMSE (original scale) of NLinear (preset sunspots-linear) beside naive last value "
                    "(31.92, the target: beat it) and seasonal naive over one 132-month cycle")
def sunspots_1937(work_dir: Path) -> dict[str, Any]:
    rows = [*baseline_rows(work_dir, "monthly-sunspots", 264, 12, 132),
            forecast_run(work_dir / "linear", "sunspots-linear", [])]
    return {"value": rows[-1]["rmse_original"], "models": rows}
