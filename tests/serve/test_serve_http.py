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
    rc, _, err = cli(capsys, "serve", "--runs", str(tmp_path), "--lab", str(tmp_path / "nolab"))
    assert rc != 0 and f"--lab {tmp_path / 'nolab'} is not a folder; give an `archzoo lab` output folder" in err


def test_without_the_serve_extra_the_command_says_how_to_get_it(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else find_spec(name, *a))
    rc, _, err = cli(capsys, "serve")
    assert rc != 0 and err.strip().endswith("archzoo serve needs the serve extra (fastapi missing): pip install "
                                            "'archzoo[serve]'")


# -- speech, hopfield, lab ---------------------------------------------------------------------------
needs_speech = pytest.mark.skipif(not tiny_runs.available("speech-cnn"), reason="../shared/data/spoken-digits not staged")


def wav_bytes(samples: object, rate: int = 8000) -> bytes:
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@needs_speech
def test_speech_transcribes_a_real_recording_as_the_cli_does(served: Served, runs_root: Path) -> None:
    import archzoo

    wav = tiny_runs.speech_wav()
    status, body = post_form(served, "/api/speech", {"runs": "speech-cnn,speech-ctc"}, {"audio": (wav.name, wav.read_bytes())})
    assert status == 200, body
    cnn, ctc = body["results"]
    expected = archzoo.load(runs_root / "speech-cnn", device="cpu").transcribe(wav, top=10)
    assert cnn["kind"] == "isolated" and cnn["text"] == expected.texts[0]
    assert [(r["text"], r["p"]) for r in cnn["readings"]] == [(t, pytest.approx(p, abs=1e-5))
                                                              for t, p in expected.alternatives[0]]
    assert [p["class"] for p in cnn["probs"]] == [str(d) for d in range(10)] and abs(sum(p["p"] for p in cnn["probs"]) - 1) < 1e-4
    assert body["features"].startswith("data:image/png;base64,")
    beams = archzoo.load(runs_root / "speech-ctc", device="cpu").transcribe(wav, top=5)
    assert ctc["kind"] == "connected" and ctc["text"] == beams.texts[0] and ctc["decoding"] == "prefix beam search, width 2"
    assert [r["text"] for r in ctc["readings"]] == [t for t, _ in beams.alternatives[0]]
    assert ctc["plot"].startswith("data:image/png;base64,")
    status, body = post_form(served, "/api/speech", {"runs": "speech-ctc", "beam": "1"}, {"audio": (wav.name, wav.read_bytes())})
    greedy = archzoo.load(runs_root / "speech-ctc", device="cpu").transcribe(wav, beam=1)
    assert status == 200 and body["results"][0]["decoding"] == "greedy (best path)"
    assert body["results"][0]["text"] == greedy.texts[0] and len(body["results"][0]["readings"]) == 1


@needs_speech
@pytest.mark.parametrize(("name", "data", "needle"), [
    ("notes.wav", b"RIFF\x00\x00garbage", "notes.wav is not readable audio ("),
    ("empty.wav", b"", "the WAV file is empty; choose a file"),
    ("huge.wav", b"\x00" * ((4 << 20) + 1), "the WAV file is 4.0 MiB, more than 4 MiB; choose a smaller file"),
    ("long.wav", "25 s", "long.wav is 25.0 s long, more than the page's 20 s; cut it into shorter recordings"),
    ("low.wav", "500 Hz", "low.wav has a sample rate of 500 Hz; give a recording at 1,000-384,000 Hz"),
    ("../../etc/passwd.wav", b"not audio", "passwd.wav is not readable audio"),
])
def test_bad_recordings_are_refused_in_one_line(served: Served, name: str, data: object, needle: str) -> None:
    import numpy as np

    if data == "25 s":
        data = wav_bytes(np.full(25 * 8000, 0.1, np.float32))
    elif data == "500 Hz":
        data = wav_bytes(np.full(1000, 0.1, np.float32), 500)
    status, body = post_form(served, "/api/speech", {"runs": "speech-cnn"}, {"audio": (name, data)})
    assert status == 400 and needle in body["error"], body
    assert "\n" not in body["error"] and "archzoo-serve-" not in body["error"] and "/etc" not in body["error"]


@needs_speech
def test_a_run_bound_shows_on_its_card_naming_the_upload(served: Served) -> None:
    import numpy as np

    six_seconds = wav_bytes(np.sin(np.arange(6 * 8000) / 5).astype(np.float32) * 0.3)
    status, body = post_form(served, "/api/speech", {"runs": "speech-cnn,speech-ctc"}, {"audio": ("six.wav", six_seconds)})
    assert status == 200
    cnn, ctc = body["results"]
    assert cnn["error"].startswith("six.wav is 6.0 s long; this model takes at most 5 s of audio")  # isolated: 5 s
    assert "text" in ctc  # connected digits take 20 s
    silent = wav_bytes(np.zeros(8000, np.float32))
    status, body = post_form(served, "/api/speech", {"runs": "speech-cnn"}, {"audio": ("quiet.wav", silent)})
    assert status == 200 and body["results"][0]["error"].startswith("quiet.wav is silent")
    status, body = post_form(served, "/api/speech", {"runs": "speech-ctc", "beam": "11"}, {"audio": ("x.wav", silent)})
    assert status == 400 and "beam = 11 is more than 10" in body["error"]
    status, body = post_form(served, "/api/speech", {"runs": "digits-cnn"}, {"audio": ("x.wav", six_seconds)})
    assert status == 200 and "choose one of the speech tab's runs" in body["results"][0]["error"]


def png_pixels(url: str) -> list[int]:
    import base64

    import numpy as np

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))).ravel().tolist()


def test_hopfield_recalls_a_corrupted_pattern_step_by_step(served: Served) -> None:
    status, details = served.json("/api/runs/hopfield-classic")
    assert status == 200 and details["stored"] == 2 and len(details["patterns"]) == 2
    status, body = served.json("/api/hopfield", {"runs": ["hopfield-classic", "hopfield-modern"], "pattern": 1,
                                                 "corrupt": 0.2, "seed": 5})
    assert status == 200, body
    for r in body["results"]:
        assert r["cue_bits"] == round(0.2 * 784) and r["bits"] == 784
        assert r["recovered"] and r["bits_wrong"] == 0 and r["nearest"] == 1
        assert png_pixels(r["recalled"]) == png_pixels(r["stored"]) == png_pixels(details["patterns"][1])
        assert png_pixels(r["cue"]) != png_pixels(r["stored"])
        assert len(r["energies"]) == len(r["steps"]) + 1 >= 2
        assert all(b <= a + 1e-3 for a, b in zip(r["energies"], r["energies"][1:], strict=False))  # energy never rises
    classic, modern = body["results"]
    assert classic["model_kind"] == "HopfieldNetwork" and modern["model_kind"] == "ModernHopfield"
    assert png_pixels(classic["cue"]) == png_pixels(modern["cue"])  # the same corruption for both
    status, body = served.json("/api/hopfield", {"runs": ["hopfield-classic"], "pattern": 0, "occlude": True})
    cue = png_pixels(body["results"][0]["cue"])
    assert status == 200 and set(cue[14 * 28:]) == {0}  # the lower half erased to background


@pytest.mark.parametrize(("body", "needle"), [
    ({"runs": ["hopfield-classic"], "pattern": 0, "corrupt": 1.5}, "corrupt is the fraction of pixels to flip, in [0, 1]"),
    ({"runs": ["hopfield-classic"], "corrupt": 0.2}, "choose a stored image"),
    ({"runs": ["hopfield-classic"], "pattern": "x"}, "pattern must be an integer, got 'x'"),
    ({"runs": ["hopfield-classic"], "pattern": 0, "seed": -1}, "the seed must be an integer"),
    ({"runs": ["hopfield-classic"], "pattern": 0, "occlude": "yes"}, "occlude must be true or false"),
    ({"runs": "hopfield-classic", "pattern": 0}, "choose at least one run"),
])
def test_bad_hopfield_requests_are_one_line_400(served: Served, body: dict, needle: str) -> None:
    status, answer = served.json("/api/hopfield", body)
    assert status == 400 and needle in answer["error"], answer


def test_a_pattern_a_run_does_not_store_shows_on_its_card(served: Served) -> None:
    status, body = served.json("/api/hopfield", {"runs": ["hopfield-classic", "hopfield-modern", "digits-cnn"],
                                                 "pattern": 7, "corrupt": 0.1})
    assert status == 200
    classic, modern, digits = body["results"]
    assert classic["error"] == "pattern must be the number of a stored image, 0 to 1; got 7"
    assert modern["recovered"] and "choose one of the hopfield tab's runs" in digits["error"]


def test_lab_pages_with_verdicts_and_figures(served: Served) -> None:
    status, body = served.json("/api/lab")
    ids = [p["id"] for p in body["pages"]]
    assert status == 200 and ids[0] == "index" and "gru-vs-lstm" in ids and body["hint"] is None
    status, index = served.json("/api/lab/index")
    assert status == 200 and index["title"] == "archzoo claims lab"
    assert '<a href="#lab/gru-vs-lstm" data-lab-page="gru-vs-lstm">gru-vs-lstm</a>' in index["html"]
    assert "<strong>refuted</strong>" in index["html"]
    status, page = served.json("/api/lab/gru-vs-lstm")
    assert status == 200 and "<strong>Verdict: refuted.</strong>" in page["html"] and page["figures"] == 1
    assert page["html"].count('src="data:image/png;base64,') == 1 and page["missing"] == []
    assert 'title="gru-vs-lstm/results.json in the lab folder' in page["html"]
    assert 'href="gru-vs-lstm/results.json"' not in page["html"]
    for bad in ("nothing", "..%2F..%2Fetc%2Fpasswd", "index.md", "gru-vs-lstm%2Fresults.json"):
        status, raw, _ = served.request(f"/api/lab/{bad}")
        error = json.loads(raw)["error"]
        assert status in (400, 404) and "\n" not in error and "root:" not in error


def test_lab_pages_never_run_html_nor_read_outside_their_folder(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    (lab / "exp").mkdir(parents=True)
    Image.new("L", (4, 4)).save(lab / "exp" / "fig.png")
    Image.new("L", (4, 4)).save(tmp_path / "secret.png")
    (lab / "index.md").write_text("# The index\n\n[exp](exp.md) <script>alert(1)</script> [x](javascript:alert(1))\n")
    (lab / "exp.md").write_text("# Exp\n\n**Verdict: supported.**\n\n![fig](exp/fig.png) ![no](../secret.png) "
                                "![abs](/etc/hosts) [site](https://example.org)\n")
    (lab / "not a page!.md").write_text("# skipped: no id for it\n")
    with serving(tmp_path, lab=lab) as site:
        status, body = site.json("/api/lab")
        assert [p["id"] for p in body["pages"]] == ["index", "exp"] and body["pages"][1]["title"] == "Exp"
        status, index = site.json("/api/lab/index")
        assert "<script>" not in index["html"] and "&lt;script&gt;" in index["html"] and 'href="javascript' not in index["html"]
        status, page = site.json("/api/lab/exp")
        assert page["figures"] == 1 and page["missing"] == ["../secret.png", "/etc/hosts"]
        assert 'href="https://example.org" target="_blank" rel="noopener noreferrer"' in page["html"]
    with serving(tmp_path) as none:
        status, body = none.json("/api/lab")
        assert status == 200 and body["pages"] == [] and "start the server with --lab" in body["hint"]
