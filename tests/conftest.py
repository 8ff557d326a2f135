"""Shared fixtures. Tests read real data from ../shared/data (read-only) through ARCHZOO_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test sees the staged data read-only and a private cache; no test writes to ~/.cache."""
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("ARCHZOO_DATA", str(SHARED_DATA))
    else:
        monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.manual_seed(0)


needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist not staged")


def small_run_overrides(**extra: object) -> list[str]:
    """Overrides for a seconds-long real-data run on the built-in MNIST subset."""
    base = {"data.dataset": "'mnist-small'", "data.val_size": 500, "train.batch_size": 64,
            "train.log_every_steps": 5, "train.precision": "'fp32'"}
    base.update({k: (repr(v) if isinstance(v, str) else v) for k, v in extra.items()})
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in base.items()]


os.environ.setdefault("MPLBACKEND", "Agg")
