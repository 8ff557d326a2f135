"""Shared fixtures. Tests read real data from ../shared/data (read-only) through ARCHZOO_DATA."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helpers import SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test sees the staged data read-only and a private cache; no test writes to ~/.cache."""
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("ARCHZOO_DATA", str(SHARED_DATA))
    else:
        monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.manual_seed(0)


def registered(exp: object) -> Iterator:
    """``exp`` in the experiment registry for the length of one test."""
    from archzoo.lab import EXPERIMENTS

    EXPERIMENTS._entries[exp.name] = exp
    try:
        yield exp
    finally:
        del EXPERIMENTS._entries[exp.name]


@pytest.fixture
def fake_experiment() -> Iterator:
    """A tiny lab experiment (tests/lab_fakes.py), in the experiment registry for the test that asks for it."""
    from lab_fakes import FakeExperiment

    yield from registered(FakeExperiment())


@pytest.fixture
def fake_training_experiment() -> Iterator:
    """A resumable lab experiment whose cells are seconds-long trainings (tests/lab_fakes.py), registered."""
    from lab_fakes import FakeTrainingExperiment

    yield from registered(FakeTrainingExperiment())


os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/test.sh runs one pytest worker per core: a worker's torch needs one thread, not all cores
    torch.set_num_threads(1)
