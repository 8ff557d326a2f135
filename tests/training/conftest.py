"""Fixtures for the training tests: one thread and stubbed report figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """One thread (these models are tiny; on a shared 2-core machine threads only wait on each other,
    and torchrun ranks get one each), and empty files for the figures, which are viz's business and
    take seconds. A module lists the plots it wants drawn for real in ``DRAWN_PLOTS``."""
    import archzoo.viz.plots as plots

    def stub(*args: object, **kwargs: object) -> Path:
        path = next(a for a in args if isinstance(a, Path))
        path.write_bytes(b"")
        return path

    drawn = getattr(request.module, "DRAWN_PLOTS", ())
    for name in ("plot_confusion", "plot_image_grid", "plot_curves"):
        if name not in drawn:
            monkeypatch.setattr(plots, name, stub)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
