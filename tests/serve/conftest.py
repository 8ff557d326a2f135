"""A real ``archzoo serve`` server (uvicorn on a free loopback port, in a thread) over tiny runs trained
once per session: the HTTP tests and the browser tests talk to it as the page does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'archzoo[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'archzoo[serve]'")

import tiny_runs  # noqa: E402  (tests/serve is on sys.path: pytest's rootdir-relative import)
from serving import Served, start  # noqa: E402

SERVED = ["digits-cnn", "digits-mlp", "text-gpt", "text-lstm", "translate-transformer"]


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny runs for the digits and text tabs (built-in data) and, when Multi30K is staged, translation."""
    import torch

    root = tmp_path_factory.mktemp("serve-runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tiny_runs.train_all(root, SERVED)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="session")
def served(runs_root: Path) -> Iterator[Served]:
    from archzoo.serve.app import LOCAL_HOSTS, create_app
    from archzoo.serve.catalog import Catalog

    app = create_app(Catalog(runs_root, "cpu", tiny_runs.data_dir()), workers=2, queue=4, hosts=LOCAL_HOSTS)
    server, thread, port = start(app)
    yield Served(f"http://127.0.0.1:{port}", app)
    server.should_exit = True
    thread.join(10)
