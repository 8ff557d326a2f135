"""A loopback HTTP mirror of ../shared/data for download tests: Range support, request log, faults.

Used by tests/data/test_sources.py and tests/cli/test_data_cli.py (importable because the rootdir
conftest puts tests/ on sys.path). It binds 127.0.0.1 on an ephemeral port and serves only files.
"""

from __future__ import annotations

import functools
import io
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    server: MirrorServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def send_head(self) -> io.BytesIO | None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "not found")
            return None
        data = path.read_bytes()
        if srv.mangle is not None:  # a faulty server: wrong bytes, full file, Range ignored
            body = srv.mangle(data)
            return self._send(200, body, len(body))
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if not match or not srv.honour_range:
            return self._send(200, data, len(data), cut=srv.cut_after)
        start = int(match.group(1))
        if start >= len(data):
            self.send_error(416, "range not satisfiable")
            return None
        return self._send(206, data[start:], len(data) - start, content_range=f"bytes {start}-{len(data) - 1}/{len(data)}",
                          cut=srv.cut_after)

    def _send(self, status: int, body: bytes, length: int, content_range: str | None = None,
              cut: int | None = None) -> io.BytesIO | None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if content_range:
            self.send_header("Content-Range", content_range)
        self.end_headers()
        if cut is not None:  # promise the whole body, send part of it, then hang up
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return None
        return io.BytesIO(body)


class MirrorServer(ThreadingHTTPServer):
    """Knobs a test may set: ``mangle`` (serve wrong bytes), ``honour_range``, ``cut_after`` (hang up)."""

    daemon_threads = True
    url: str
    requests: list[tuple[str, str | None]]  # (path, Range header) of every GET
    mangle: Callable[[bytes], bytes] | None = None
    honour_range: bool = True
    cut_after: int | None = None


@contextmanager
def serve(root: str | os.PathLike[str]) -> Iterator[MirrorServer]:
    """Serve ``root`` on http://127.0.0.1:<ephemeral>; the server object has ``url`` and ``requests``."""
    handler = functools.partial(_Handler, directory=str(root))
    server = MirrorServer(("127.0.0.1", 0), handler)
    server.requests = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bind an ephemeral port, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
