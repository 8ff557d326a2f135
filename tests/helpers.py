"""Helpers shared by the test modules (imported as ``helpers``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist not staged")


def small_run_overrides(**extra: object) -> list[str]:
    """Overrides for a seconds-long real-data run on the built-in MNIST subset."""
    base = {"data.dataset": "'mnist-small'", "data.val_size": 500, "train.batch_size": 64,
            "train.log_every_steps": 5, "train.precision": "'fp32'"}
    base.update({k: (repr(v) if isinstance(v, str) else v) for k, v in extra.items()})
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in base.items()]
