"""Load test of `archzoo serve` on loopback: N concurrent clients for S seconds against the digits and
text endpoints, then a JSON record in benchmarks/results/serve-load.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_load.py [--runs DIR] [--clients 32] [--seconds 60]

The server is a separate `archzoo serve` process (default workers and queue) on 127.0.0.1 with a free
port. Without --runs it serves tiny runs trained first (tests/serve/tiny_runs.py: simple_cnn on the
built-in MNIST subset, a one-layer GPT on Tiny Shakespeare). Each client loops until the time is up,
alternating: a digit upload to every digits run with the CNN's feature maps (what the page sends on
each stroke), and a text stream of --tokens characters from the text run, read to its end. Measured:
latency per request (p50/p95/max, to the last byte), requests/s, HTTP statuses, errors (anything but
a 200 or the documented 503 queue refusal, and any error line inside a stream), and the server's
resident memory (VmRSS) after one request to each endpoint, after --warmup seconds of the same load
(the baseline: every worker thread has then made its allocations once), and after the load. The script stops
by itself: the clients stop at the deadline and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def multipart(fields: dict[str, str], image: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = b"".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items())
    body += (f'--{b}\r\nContent-Disposition: form-data; name="image"; filename="digit.png"\r\n'
             "Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


class Client:
    def __init__(self, url: str, digits: list[str], text: str, image: bytes, tokens: int):
        self.url, self.digits, self.text, self.tokens = url, digits, text, tokens
        self.form = multipart({"runs": ",".join(digits), "maps": digits[0]}, image)

    def digit(self) -> tuple[int, str | None]:
        req = urllib.request.Request(self.url + "/api/digits", self.form[0], {"Content-Type": self.form[1]})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                body = json.loads(r.read())
                bad = [x["error"] for x in body["results"] if "error" in x]
                return r.status, bad[0] if bad else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()).get("error")

    def stream(self, seed: int) -> tuple[int, str | None]:
        data = json.dumps({"run": self.text, "prompt": "ROMEO:", "tokens": self.tokens, "seed": seed}).encode()
        req = urllib.request.Request(self.url + "/api/text", data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                last = {}
                for line in r:
                    last = json.loads(line)
                    if "error" in last:
                        return (503 if "server is busy" in last["error"] else 500), last["error"]
                return (r.status, None) if last.get("done") else (500, "the stream ended without done")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()).get("error")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, help="serve this runs folder (default: train tiny runs first)")
    p.add_argument("--digits", default="", help="comma-separated digits run ids (default: every digits run)")
    p.add_argument("--text", default="", help="the text run id (default: the first text run)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=10.0,
                   help="seconds of the same load before the memory baseline (not counted; 0: none)")
    p.add_argument("--tokens", type=int, default=100, help="characters per text request")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--queue", type=int, default=64)
    p.add_argument("--data-dir", default=os.environ.get("ARCHZOO_DATA"))
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "serve-load.json")
    args = p.parse_args()
    started = time.perf_counter()

    tmp = tempfile.TemporaryDirectory(prefix="archzoo-load-")
    runs = args.runs
    if runs is None:
        import tiny_runs
        import torch

        torch.set_num_threads(1)
        runs = Path(tmp.name) / "runs"
        tiny_runs.train_all(runs, ["digits-cnn", "text-gpt"])
    cmd = [sys.executable, "-c", "import sys; from archzoo.cli.main import main; sys.exit(main())",
           "serve", "--runs", str(runs), "--port", "0",
           "--workers", str(args.workers), "--queue", str(args.queue)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, log = None, []
        for line in server.stdout:
            log.append(line)
            found = re.search(r"open (http://\S+)", line)
            if found:
                url = found.group(1)
                break
        if url is None:
            raise RuntimeError("the server did not start:\n" + "".join(log))
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # drain its log
        listing = json.loads(urllib.request.urlopen(url + "/api/runs").read())["runs"]
        digits = args.digits.split(",") if args.digits else [r["id"] for r in listing if r["tab"] == "digits"]
        text = args.text or next(r["id"] for r in listing if r["tab"] == "text")
        client = Client(url, digits, text, tiny_runs.digit_png(), args.tokens)
        for call in (client.digit, lambda: client.stream(0)):  # load the models, warm the caches
            status, err = call()
            assert status == 200 and err is None, (status, err)
        rss_first = rss_mib(server.pid)
        records: list[tuple[str, float, int, str | None]] = []
        peak = [rss_first]

        def load(seconds: float, keep: list) -> float:
            """``args.clients`` clients for ``seconds``; the wall time."""
            lock = threading.Lock()
            deadline = time.monotonic() + seconds

            def loop(k: int) -> None:
                n = 0
                while time.monotonic() < deadline:
                    kind = "digits" if (k + n) % 2 == 0 else "text"
                    t = time.perf_counter()
                    status, err = client.digit() if kind == "digits" else client.stream(k * 100_000 + n)
                    with lock:
                        keep.append((kind, time.perf_counter() - t, status, err))
                    n += 1

            def watch() -> None:
                while time.monotonic() < deadline:
                    peak[0] = max(peak[0], rss_mib(server.pid))
                    time.sleep(0.5)

            start = time.perf_counter()
            threads = [threading.Thread(target=loop, args=(k,)) for k in range(args.clients)]
            threads.append(threading.Thread(target=watch))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - start

        warmup: list = []
        if args.warmup > 0:  # every worker thread's first requests (its allocator arenas, caches) before "before"
            load(args.warmup, warmup)
            time.sleep(1.0)
        rss_before = rss_mib(server.pid)
        elapsed = load(args.seconds, records)
        time.sleep(1.0)
        rss_after = rss_mib(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        tmp.cleanup()

    def summary(kind: str | None) -> dict:
        rows = [r for r in records if kind is None or r[0] == kind]
        ok = sorted(r[1] for r in rows if r[2] == 200 and r[3] is None)
        q = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
        statuses: dict[str, int] = {}
        for r in rows:
            statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
        errors = [r[3] or f"HTTP {r[2]}" for r in rows if not (r[2] == 200 and r[3] is None) and r[2] != 503]
        return {"requests": len(rows), "ok": len(ok), "queue_rejections_503": statuses.get("503", 0),
                "errors": len(errors), "error_examples": sorted(set(errors))[:5], "statuses": statuses,
                "requests_per_s": round(len(ok) / elapsed, 2), "p50_ms": round(1000 * q[49], 1),
                "p95_ms": round(1000 * q[94], 1), "max_ms": round(1000 * ok[-1], 1) if ok else None}

    growth = 100 * (rss_after - rss_before) / rss_before
    everything = summary(None)
    result = {
        "benchmark": "serve-load", "metric": "server memory growth under load (%)", "value": round(growth, 2),
        "target": 10.0, "direction": "<=", "passed": growth <= 10.0 and everything["errors"] == 0,
        "errors": everything["errors"], "errors_target": 0,
        "clients": args.clients, "seconds": round(elapsed, 1), "tokens_per_text_request": args.tokens,
        "server": {"workers": args.workers, "queue": args.queue, "runs": str(args.runs or "tiny runs"),
                   "digits_runs": digits, "text_run": text},
        "rss_mib": {"after_first_requests": round(rss_first, 1), "before": round(rss_before, 1),
                    "after": round(rss_after, 1), "peak": round(peak[0], 1)},
        "growth_from_first_requests_pct": round(100 * (rss_after - rss_first) / rss_first, 2),
        "warmup": {"seconds": args.warmup, "requests": len(warmup),
                   "errors": sum(1 for r in warmup if not (r[2] == 200 and r[3] is None) and r[2] != 503)},
        "all": everything, "digits": summary("digits"), "text": summary("text"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    import torch

    from archzoo.benchmarks.base import machine

    result["machine"], result["torch"] = machine(), torch.__version__
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("value", "passed", "errors", "rss_mib", "all")}, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
