"""The playground's JSON API over HTTP, as the page uses it: every tab's verb on tiny real runs, every bound
with its one-line message, runs chosen only from the server's list, the Host/Origin/size guards, the
queue, and `archzoo serve`'s own command-line errors."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import uuid
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'archzoo[serve]'")
import tiny_runs
from PIL import Image
from serving import Served, serving
from tiny_runs import DIGIT_LABEL, digit_png

from helpers import cli


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_form(served: Served, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[int, dict]:
    body, headers = multipart(fields, files)
    status, raw, _ = served.request(path, body, headers)
    return status, json.loads(raw)


def test_with_no_runs_the_page_says_how_to_get_one(tmp_path: Path) -> None:
    with serving(tmp_path) as empty:
        status, body = empty.json("/api/runs")
    assert status == 200 and body["runs"] == []
    assert body["hints"]["digits"] == "archzoo train mnist-fast (about a minute)"


def test_the_page_and_the_run_list(served: Served) -> None:
    status, html, headers = served.request("/")
    assert status == 200 and b"archzoo playground" in html and headers["content-type"].startswith("text/html")
    status, body = served.json("/api/runs")
    tabs = {r["id"]: r["tab"] for r in body["runs"]}
    assert tabs["digits-cnn"] == "digits" and tabs["text-gpt"] == "text"
    assert all(not r["id"].startswith("/") for r in body["runs"])  # ids, not the server's paths
    assert body["limits"]["max_tokens"] == 2000 and "mnist-fast" in body["hints"]["digits"]


def test_digits_side_by_side_with_feature_maps(served: Served) -> None:
    status, body = post_form(served, "/api/digits", {"runs": "digits-cnn,digits-mlp", "maps": "digits-cnn"},
                             {"image": ("seven.png", digit_png())})
    assert status == 200, body
    cnn, mlp = body["results"]
    assert cnn["run"] == "digits-cnn" and cnn["label"] == str(DIGIT_LABEL)
    assert abs(sum(p["p"] for p in cnn["probs"]) - 1) < 1e-4 and len(cnn["probs"]) == 10
    assert [m["layer"] for m in cnn["maps"]] == ["features.0", "features.3"]
    assert cnn["maps"][0]["png"].startswith("data:image/png;base64,") and cnn["input"].startswith("data:image/png")
    assert "maps" not in mlp and mlp["label"].isdigit()


def test_text_streams_piece_by_piece_and_counts_tokens(served: Served) -> None:
    status, raw, headers = served.request("/api/text", json.dumps(
        {"run": "text-gpt", "prompt": "ROMEO:", "tokens": 40, "temperature": 0.8, "top_k": 20, "top_p": 0.95,
         "seed": 1}).encode(), {"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    pieces = [line["text"] for line in lines if "text" in line]
    assert pieces[0] == "ROMEO:" and len(pieces) >= 40
    done = lines[-1]
    assert done["done"] and done["tokens"] == 40 and done["tokens_per_s"] > 0


@pytest.mark.skipif(not tiny_runs.available("translate-transformer"), reason="../shared/data/multi30k not staged")
def test_translate_with_a_heatmap_per_layer_and_head(served: Served) -> None:
    status, body = served.json("/api/translate", {"run": "translate-transformer", "sentence": "Ein Mann fährt Fahrrad.",
                                                  "beam": 1, "layer": 0, "head": 1})
    assert status == 200, body
    assert isinstance(body["text"], str) and body["layers"] == 2 and body["heads"] == 4
    assert body["heatmap"].startswith("data:image/png;base64,")
    status, body = served.json("/api/translate", {"run": "translate-transformer", "sentence": "Ein Hund.", "head": 4})
    assert status == 400 and body["error"] == "layer must be in [-2, 1] and head in [0, 3] (or -1 for the mean of the heads)"


@pytest.mark.skipif(not tiny_runs.available("translate-attention"), reason="../shared/data/multi30k not staged")
def test_translate_with_bahdanau_attention(served: Served) -> None:
    status, body = served.json("/api/translate", {"run": "translate-attention", "sentence": "Zwei Hunde spielen im Schnee.",
                                                  "beam": 3})
    assert status == 200, body
    assert body["layers"] == 0 and body["heatmap"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(("path", "body", "needle"), [
    ("/api/text", {"run": "text-gpt", "prompt": "x" * 2001}, "the prompt must be text of at most 2,000 characters; it has 2,001"),
    ("/api/text", {"run": "text-gpt", "tokens": 2001}, "tokens = 2,001 is more than 2,000"),
    ("/api/text", {"run": "text-gpt", "tokens": 0}, "tokens must be >= 1"),
    ("/api/text", {"run": "../../etc/passwd"}, "no run '../../etc/passwd' on this server"),
    ("/api/text", {"run": str(Path("/tmp").resolve())}, "no run '/tmp' on this server"),
    ("/api/text", {"run": "digits-cnn"}, "digits-cnn is a classification run; choose one of the text tab's runs"),
    ("/api/text", {"run": "text-gpt", "temperature": "hot"}, "temperature must be a number, got 'hot'"),
    ("/api/text", {"run": "text-gpt", "temperature": -1}, "temperature must be > 0, got -1.0"),
    ("/api/text", {"run": "text-gpt", "top_p": 2}, "top-p must be in (0, 1], got 2.0"),
    ("/api/text", {"run": "text-gpt", "top_k": 0}, "top-k must be >= 1, got 0"),
    ("/api/text", {"run": "text-gpt", "seed": "abc"}, "the seed must be an integer in [0, 2^63 - 1], got 'abc'"),
    ("/api/text", {"run": "text-gpt", "seed": 10**30}, "the seed must be an integer in [0, 2^63 - 1]"),
    ("/api/images", {"run": "text-gpt", "seed": -1}, "the seed must be an integer"),
    ("/api/translate", {"run": "text-gpt", "sentence": ""}, "the sentence is empty"),
    ("/api/translate", {"run": "text-gpt", "sentence": "Hallo", "beam": 11}, "beam = 11 is more than 10"),
    ("/api/images", {"run": "text-gpt", "n": 65}, "samples = 65 is more than 64"),
    ("/api/sentiment", {"runs": ["x"] * 17, "sentence": "fine"}, "17 runs chosen; compare at most 16"),
])
def test_bad_input_is_one_line_400(served: Served, path: str, body: dict, needle: str) -> None:
    status, answer = served.json(path, body)
    assert status == 400 and needle in answer["error"], answer
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"]


def test_bad_uploads_are_one_line(served: Served) -> None:
    status, body = post_form(served, "/api/digits", {"runs": "digits-cnn"}, {"image": ("x.png", b"not an image")})
    assert status == 400
    assert body["error"] == "the image is not a readable image (UnidentifiedImageError); give a PNG or JPEG file"
    status, body = post_form(served, "/api/digits", {"runs": "digits-cnn"}, {"image": ("x.png", b"")})
    assert status == 400 and body["error"] == "the image is empty; choose a file"
    big = io.BytesIO()
    Image.new("L", (5000, 4000)).save(big, format="PNG")
    status, body = post_form(served, "/api/digits", {"runs": "digits-cnn"}, {"image": ("big.png", big.getvalue())})
    assert status == 400 and "5000 x 4000 pixels, more than 16,777,216" in body["error"]
    status, body = post_form(served, "/api/digits", {"runs": "text-gpt"}, {"image": ("seven.png", digit_png())})
    assert status == 200 and "choose one of the digits tab's runs" in body["results"][0]["error"]
    status, body = served.json("/api/translate", None, method="POST")
    assert status == 400 and body["error"] in ("the request is not JSON", "send the request with a Content-Length")


def test_guards_refuse_other_hosts_origins_and_large_bodies(served: Served) -> None:
    status, raw, _ = served.request("/api/runs", headers={"Host": "evil.example:80"})
    assert status == 400 and "not 'evil.example:80'" in json.loads(raw)["error"]
    status, raw, _ = served.request("/api/text", b"{}", {"Origin": "http://evil.example", "Content-Type": "application/json"})
    assert status == 403 and "another site" in json.loads(raw)["error"]
    # the answer comes from the headers alone, before any of the body is read
    with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1])), timeout=10) as conn:
        conn.sendall(f"POST /api/digits HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {(8 << 20) + 1}\r\n\r\n".encode())
        answer = b""
        while b"MiB" not in answer and (chunk := conn.recv(65536)):
            answer += chunk
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "over 8 MiB" in answer
    status, raw, _ = served.request("/api/nothing")
    assert status == 404 and json.loads(raw) == {"error": "Not Found"}


def test_the_gate_queues_then_refuses() -> None:
    from archzoo.serve.limits import Busy, Gate

    async def scenario() -> None:
        gate = Gate(workers=1, queue=1)
        await gate.enter()  # computing
        waiter = asyncio.ensure_future(gate.enter())
        await asyncio.sleep(0)
        assert gate.waiting == 1 and gate.full()
        with pytest.raises(Busy, match="1 requests are running and 1 waiting"):
            await gate.enter()
        gate.leave()
        await waiter
        assert gate.active == 1 and not gate.full()
        gate.leave()

    asyncio.run(scenario())


def test_cli_serves_loopback_and_warns_for_other_hosts(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import archzoo.serve.app

    served_on = []

    class NoServer:
        def run(self, sockets: list) -> None:  # stands in for uvicorn: note the socket, serve nothing
            served_on.append(sockets[0].getsockname()[0])
            sockets[0].close()

    monkeypatch.setattr(archzoo.serve.app, "uvicorn_server", lambda app, log_requests=False: NoServer())
    rc, out, err = cli(capsys, "serve", "--runs", str(tmp_path), "--port", "0")
    assert rc == 0 and served_on == ["127.0.0.1"] and not err
    assert f"no runs under {tmp_path} yet; train one with `archzoo train mnist-fast` (about a minute)" in out
    rc, out, err = cli(capsys, "serve", "--runs", str(tmp_path), "--port", "0", "--host", "0.0.0.0")
    assert rc == 0 and served_on[-1] == "0.0.0.0"
    assert err.startswith("warning: listening on 0.0.0.0: anyone who can reach this machine")


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = cli(capsys, "serve", "--runs", str(tmp_path / "missing"))
    assert rc != 0 and f"--runs {tmp_path / 'missing'} is not a folder" in err
    from archzoo.cli.serve import bind

    taken = bind("127.0.0.1", 0)
    try:
        rc, _, err = cli(capsys, "serve", "--runs", str(tmp_path), "--port", str(taken.getsockname()[1]))
        assert rc != 0 and "is in use (another server?)" in err
    finally:
        taken.close()
    rc, _, err = cli(capsys, "serve", "--host", "no-such-host.invalid", "--runs", str(tmp_path))
    assert rc != 0 and "no such address on this machine" in err


def test_without_the_serve_extra_the_command_says_how_to_get_it(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else find_spec(name, *a))
    rc, _, err = cli(capsys, "serve")
    assert rc != 0 and err.strip().endswith("archzoo serve needs the serve extra (fastapi missing): pip install "
                                            "'archzoo[serve]'")
