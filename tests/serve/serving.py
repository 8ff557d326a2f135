"""A playground server for tests, screenshots and the load test: uvicorn on a free loopback port in a
thread, and plain-urllib requests to it."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Served:
    """A running server: its base URL, and JSON requests to it."""

    def __init__(self, url: str, app: Any):
        self.url, self.app = url, app

    def request(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
                method: str | None = None) -> tuple[int, bytes, dict[str, str]]:
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def json(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        status, raw, _ = self.request(path, data, headers, **kwargs)
        return status, json.loads(raw)


def start(app: Any) -> tuple[Any, threading.Thread, int]:
    """Serve ``app`` on a free loopback port from a thread; (server, thread, port)."""
    from archzoo.cli.serve import bind
    from archzoo.serve.app import uvicorn_server

    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, sock.getsockname()[1]


@contextlib.contextmanager
def serving(root: Path, data_dir: Path | None = None, workers: int = 2, queue: int = 4,
            lab: Path | None = None) -> Iterator[Served]:
    """``archzoo serve``'s application over the runs under ``root`` (and the lab report ``lab``), served on
    loopback while in the block."""
    from archzoo.serve.app import LOCAL_HOSTS, create_app
    from archzoo.serve.catalog import Catalog

    app = create_app(Catalog(root, "cpu", data_dir), workers=workers, queue=queue, hosts=LOCAL_HOSTS, lab=lab)
    server, thread, port = start(app)
    try:
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(10)
