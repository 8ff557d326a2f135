"""A real ``archzoo serve`` server (uvicorn on a free loopback port, in a thread) over tiny runs trained
once per session: the HTTP tests and the browser tests talk to it as the page does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tiny_runs  # tests/serve is on sys.path (pytest's rootdir-relative import)
from serving import Served, serving

SERVED = list(tiny_runs.RUNS)  # one or two per tab; those whose data is not staged are left out


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny runs for every tab: digits, text, images and Hopfield on built-in data; translate, sentiment,
    forecast and speech when their data is staged."""
    import torch

    root = tmp_path_factory.mktemp("serve-runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:  # session fixtures run before the per-test environment
            mp.setenv("XDG_CACHE_HOME", str(root.parent / "cache"))
            tiny_runs.train_all(root, SERVED)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="session")
def served(runs_root: Path) -> Iterator[Served]:
    with serving(runs_root, tiny_runs.data_dir(), lab=tiny_runs.LAB) as site:
        yield site


@pytest.fixture(scope="session")
def page_served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The server the browser tests use: over ARCHZOO_SERVE_RUNS when set (a folder of real runs, for the
    README's screenshots), else the tiny runs."""
    import os

    folder = os.environ.get("ARCHZOO_SERVE_RUNS")
    if not folder:
        yield request.getfixturevalue("served")
        return
    with serving(Path(folder), tiny_runs.data_dir(), lab=tiny_runs.LAB) as site:
        yield site
