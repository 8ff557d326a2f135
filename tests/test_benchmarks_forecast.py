"""The forecasting benchmarks' harness on a seconds-long case (benchmarks measure; nothing here asserts a figure
beyond the staged README's seasonal-naive one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archzoo.benchmarks.forecast import baseline_overrides, forecast_run
from helpers import SHARED_DATA


@pytest.mark.skipif(not (SHARED_DATA / "airline-passengers").is_dir(), reason="../shared/data not staged")
def test_forecast_run_reports_a_baseline(tmp_path: Path) -> None:
    row = forecast_run(tmp_path, None, baseline_overrides("airline-passengers", 36, 12, "seasonal_naive", period=12))
    assert row["model"] == "seasonal_naive" and row["steps"] == 0 and row["windows"] == 1
    assert row["rmse_original"] == pytest.approx(50.708, abs=1e-3) and row["mape_original"] == pytest.approx(9.988, abs=1e-3)
