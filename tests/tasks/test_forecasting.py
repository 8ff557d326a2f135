"""The forecasting task (tasks/forecasting.py): baselines computed exactly on the staged files, every
window counted (the last incomplete batch too), one-line errors, and learning on real ETTh1 data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archzoo.errors import UserError
from archzoo.models import create_model
from archzoo.tasks.forecasting import Forecasting, ForecastingConfig, mape
from archzoo.training.config import resolve_config
from archzoo.training.trainer import Trainer
from helpers import SHARED_DATA

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "ett-small").is_dir(), reason="../shared/data/ett-small not staged")


def test_naive_last_value_on_etth1_is_the_staged_readmes_figure() -> None:
    """Look-back 96, horizon 96: 2,785 test windows, MSE 1.294 and MAE 0.713 multivariate, 0.069 on OT alone."""
    task = Forecasting(ForecastingConfig(dataset="etth1", seq_len=96, horizon=96))
    model = create_model("naive_last", **task.model_args())
    pred, true = task.split_forecasts(model, "test", batch_size=1000)  # 2 full batches and one of 785
    assert pred.shape == true.shape == (2785, 96, 7)
    metrics = task.evaluate(model, "test", batch_size=1000)
    assert round(metrics["mse"], 3) == 1.294 and round(metrics["mae"], 3) == 0.713
    # the last incomplete batch counts: every batch size gives the same figure
    for batch_size in (1024, 2785, 4096):
        assert task.evaluate(model, "test", batch_size) == pytest.approx(metrics, rel=1e-6)
    ot = Forecasting(ForecastingConfig(dataset="etth1", columns=("OT",), seq_len=96, horizon=96))
    assert round(ot.evaluate(create_model("naive_last", **ot.model_args()), "test", 1000)["mse"], 3) == 0.069


def test_airline_baselines_match_the_staged_readme(tmp_path: Path) -> None:
    task = Forecasting(ForecastingConfig(dataset="airline-passengers", seq_len=36, horizon=12, transform="log"))
    seasonal = task.report(create_model("seasonal_naive", **task.model_args(), period=12), tmp_path, 64)
    assert round(seasonal["rmse_original"], 1) == 50.7 and round(seasonal["mape_original"], 1) == 10.0
    assert seasonal["windows"] == 1 and seasonal["test_span"] == ["1960-01", "1960-12"]
    assert round(task.report(create_model("naive_last", **task.model_args()), tmp_path, 64)["rmse_original"], 1) == 103.0
    assert json.loads((tmp_path / "eval.json").read_text())["rmse_original"] == pytest.approx(102.98, abs=0.01)
    assert (tmp_path / "forecast.png").stat().st_size > 0


def test_mape_is_undefined_near_zero_truth() -> None:
    import numpy as np

    assert mape(np.array([110.0, 90.0]), np.array([100.0, 100.0])) == pytest.approx(10.0)
    assert mape(np.array([1.0, 1.0]), np.array([0.0, 5.0])) is None


@pytest.mark.parametrize(("changes", "match"), [
    ({"dataset": "airline-passengers", "seq_len": 24, "horizon": 24},
     r"data.horizon=24 is longer than the test split of airline-passengers \(12 rows, 1960-01 .. 1960-12\); "
     r"choose data.horizon <= 12"),
    ({"dataset": "airline-passengers", "seq_len": 121, "horizon": 12}, r"data.seq_len=121 reaches before"),
    ({"dataset": "etth1", "seq_len": 8000, "horizon": 720}, r"longer than the training split"),
    ({"dataset": "etth1", "columns": ("OT", "oil")}, r"no column 'oil'"),
    ({"dataset": "mnist"}, r"dataset 'mnist' is not a time series"),
    ({"dataset": "no/such.csv"}, r"no/such.csv does not exist"),
])
def test_bad_settings_are_one_line_errors(changes: dict, match: str) -> None:
    with pytest.raises(UserError, match=match) as excinfo:
        Forecasting(ForecastingConfig(**changes))
    assert "\n" not in str(excinfo.value)


def test_loss_falls_on_real_etth1(tmp_path: Path) -> None:
    cfg = resolve_config("etth1-gru", ["data.seq_len=96", "data.horizon=24", "data.columns=['HUFL', 'OT']",
                                       "model.args.hidden_size=16", "train.batch_size=32", "train.lr=1e-2",
                                       "train.schedule='constant'", "train.max_steps=30", "train.log_every_steps=10",
                                       "train.eval_every_steps=30", "train.eval_batch_size=4096"])
    trainer = Trainer(cfg, tmp_path, progress=False, verbose=False)
    before = trainer.evaluate("val")["mse"]
    result = trainer.fit()
    losses = [r["loss"] for r in result.history if r["split"] == "train"]
    assert len(losses) == 3 and result.best is not None and result.best["mse"] < 0.7 * before
    assert result.test is not None and result.test["windows"] == 2880 - 24 + 1


def test_a_model_with_nothing_to_train_is_validated_saved_and_reported(tmp_path: Path) -> None:
    cfg = resolve_config(None, ["task='forecasting'", "model.name='naive_last'", "data.horizon=24"])
    result = Trainer(cfg, tmp_path / "naive", progress=False, verbose=False).fit()
    assert result.step == 0 and result.status == "completed" and result.test is not None and result.best is not None
    assert (tmp_path / "naive" / "best.safetensors").is_file() and (tmp_path / "naive" / "eval.json").is_file()
    assert torch.isfinite(torch.tensor(result.test["mse"])) and result.test["windows"] == 2857
    dry = Trainer(cfg, tmp_path / "dry", progress=False, verbose=False).fit(dry_run=True)
    assert dry.status == "dry_run" and dry.test is not None and dry.test["train_loss"] > 0
    assert not (tmp_path / "dry").exists()
