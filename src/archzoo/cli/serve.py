"""``archzoo serve [--runs DIR] [--host 127.0.0.1] [--port 8000]``: a local web page to use and compare the
trained runs (the ``serve`` extra: ``pip install 'archzoo[serve]'``)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from archzoo.cli.common import add_data_dir

DEFAULT_RUNS = Path("runs")
DEFAULT_LAB = Path("docs/lab")  # the committed lab report, in a checkout of archzoo


def bounded_int(low: int, high: int) -> object:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value

    return check


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a local web page to use and compare the trained runs",
                       description="Serves every run under --runs on a page at http://127.0.0.1:8000: draw a digit, "
                       "stream text, translate, sample a GAN, classify a sentence, forecast a series, transcribe a WAV, "
                       "watch a Hopfield network recall, browse the models and the lab report. Needs the serve extra: "
                       "pip install 'archzoo[serve]'.")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="the folder of run folders (default runs/)")
    p.add_argument("--lab", type=Path, default=DEFAULT_LAB,
                   help="the lab report the Lab tab shows: an `archzoo lab` output folder (default docs/lab)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=bounded_int(0, 65535), default=8000, help="default 8000; 0 picks a free port")
    p.add_argument("--workers", type=bounded_int(1, 64), default=4, help="requests computing at once (default 4)")
    p.add_argument("--queue", type=bounded_int(0, 10_000), default=64,
                   help="requests waiting for a worker before more are refused (default 64)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--log-requests", action="store_true", help="print one line per request")
    add_data_dir(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util
    import os
    import sys

    from archzoo.errors import UserError

    missing = [m for m in ("fastapi", "uvicorn", "multipart", "markdown_it") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"archzoo serve needs the serve extra ({', '.join(missing)} missing): pip install 'archzoo[serve]'")
    if args.runs != DEFAULT_RUNS and not args.runs.is_dir():
        raise UserError(f"--runs {args.runs} is not a folder; give the folder that holds your run folders")
    if args.lab != DEFAULT_LAB and not args.lab.is_dir():
        raise UserError(f"--lab {args.lab} is not a folder; give an `archzoo lab` output folder (e.g. runs/lab)")

    import torch

    from archzoo.serve.app import LOCAL_HOSTS, create_app, uvicorn_server
    from archzoo.serve.catalog import Catalog

    sock = bind(args.host, args.port)
    if args.host not in LOCAL_HOSTS:
        print(f"warning: listening on {args.host}: anyone who can reach this machine on port {sock.getsockname()[1]} can "
              "use these models and its CPU, with no login; leave --host out to serve this machine only", file=sys.stderr)
    # one intra-op thread per worker on a small machine: requests compute side by side rather than in turn
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.workers))
    catalog = Catalog(args.runs, args.device, args.data_dir)
    entries = catalog.entries()
    hosts = None if args.host in ("0.0.0.0", "::", "") else LOCAL_HOSTS | {args.host.strip("[]")}
    app = create_app(catalog, args.workers, args.queue, hosts, args.lab)
    port = sock.getsockname()[1]
    address = f"[{args.host}]" if ":" in args.host else args.host
    if entries:
        tabs = sorted({e.tab or e.task for e in entries})
        print(f"archzoo serve: {len(entries)} run(s) under {args.runs} ({', '.join(tabs)})")
    else:
        print(f"archzoo serve: no runs under {args.runs} yet; train one with `archzoo train mnist-fast` (about a "
              "minute), then reload the page")
    print(f"open http://{address}:{port}  (Ctrl-C stops)", flush=True)
    uvicorn_server(app, args.log_requests).run(sockets=[sock])
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so that a port in use or an unknown host is one line before the server starts."""
    import errno

    from archzoo.errors import UserError

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host.strip("[]"), port), family=family, reuse_port=False)
    except socket.gaierror:
        raise UserError(f"--host {host}: no such address on this machine; use 127.0.0.1 (or 0.0.0.0 for every "
                        "interface)") from None
    except OSError as e:
        if isinstance(e.__cause__, socket.gaierror) or (e.errno is not None and e.errno < 0):  # resolver errors
            raise UserError(f"--host {host}: no such address on this machine; use 127.0.0.1 (or 0.0.0.0 for every "
                            "interface)") from None
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use (another server?); choose another with --port, or --port 0 for "
                            "any free one") from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise UserError(f"port {port} needs privileges; choose one above 1023 with --port") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UserError(f"--host {host} is not an address of this machine; use 127.0.0.1") from None
        raise UserError(f"cannot listen on {host} port {port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock
