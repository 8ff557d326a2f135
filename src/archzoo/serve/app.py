"""The page and its JSON API. Each route checks its inputs against ``limits``, then calls the chosen run's
verb in a worker thread behind the ``Gate``; results go back as JSON with images as PNG data URLs.

Errors are one line of JSON, ``{"error": "..."}``: a ``UserError`` (bad input, HTTP 400), a full queue
(503), an oversized body (413), a foreign Host or Origin (400/403); anything else is "internal error"
on the page (500) with its traceback only in the server's log.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
import typing
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from archzoo.errors import UserError
from archzoo.serve import limits
from archzoo.serve.catalog import TABS, Catalog
from archzoo.serve.lab import LabPages
from archzoo.serve.limits import Busy
from archzoo.serve.pictures import MAP_CHANNELS, pixels_url, plotted, tiles_url
from archzoo.serve.tabs import recall_pattern, stored_patterns, transcribe_upload, upload_name

STATIC = Path(__file__).parent / "static"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
log = logging.getLogger("archzoo.serve")


class Server:
    """What the routes share: the runs, the gate in front of the worker threads, and the hosts the page
    may be reached under."""

    def __init__(self, catalog: Catalog, workers: int, queue: int, hosts: set[str] | None, lab: LabPages):
        self.catalog, self.lab = catalog, lab
        self.gate = limits.Gate(workers, queue)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="archzoo-serve")
        self.hosts = hosts  # None: any (the user bound every interface on purpose)

    async def compute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread once the gate admits it. The worker stays counted until the
        thread is done, even when the client has gone."""
        await self.gate.enter()
        try:
            future = self.pool.submit(trimmed, fn, *args)
        except BaseException:
            self.gate.leave()
            raise
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self.gate.leave))
        return await asyncio.wrap_future(future)


def _malloc_trim() -> Callable[[], Any] | None:
    """glibc's ``malloc_trim(0)``, or None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


MALLOC_TRIM = _malloc_trim()


def trimmed(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, then the freed heap pages go back to the system: with several worker threads, glibc's
    per-thread arenas otherwise keep what a request's large temporaries (images, plots) left behind."""
    try:
        return fn(*args)
    finally:
        if MALLOC_TRIM is not None:
            MALLOC_TRIM()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


class Guard:
    """ASGI middleware run before any route: requests name an allowed Host (a page on another site cannot
    reach a loopback server through DNS rebinding), a POST from a browser comes from this page's origin,
    and no body exceeds limits.MAX_BODY_BYTES."""

    def __init__(self, app: ASGIApp, server: Server):
        self.app, self.server = app, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0].strip("[]") if not host.endswith("]") else host.strip("[]")
        if self.server.hosts is not None and name not in self.server.hosts:
            response = error(400, f"this server answers as {', '.join(sorted(self.server.hosts))}, not {host!r}; "
                                  "open the address `archzoo serve` printed")
        elif scope["method"] == "POST" and headers.get("origin") not in (None, f"http://{host}"):
            response = error(403, f"a request from another site ({headers['origin']}) is refused; use the page itself")
        elif int(headers.get("content-length", "0") or "0") > limits.MAX_BODY_BYTES:
            response = error(413, f"the request is over {limits.MAX_BODY_BYTES >> 20} MiB; send a smaller file")
        elif scope["method"] == "POST" and "content-length" not in headers:
            response = error(411, "send the request with a Content-Length")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def create_app(catalog: Catalog, workers: int = 4, queue: int = 64, hosts: set[str] | None = None,
               lab: Path | None = None) -> FastAPI:
    """The FastAPI application over ``catalog``: ``workers`` requests compute at once, ``queue`` more wait;
    ``hosts`` are the names the page may be reached under (None: any); ``lab`` is the lab report folder
    the Lab tab shows (None: none)."""
    server = Server(catalog, workers, queue, hosts, LabPages(lab))
    app = FastAPI(title="archzoo", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.add_middleware(Guard, server=server)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_error_handlers(app)
    add_routes(app, server)
    return app


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(_: Request, e: UserError) -> JSONResponse:
        return error(400, str(e))

    @app.exception_handler(Busy)
    async def busy(_: Request, e: Busy) -> JSONResponse:
        return error(503, str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
        return error(400, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def internal(_: Request, e: Exception) -> JSONResponse:
        # Starlette raises the exception on after this response, and uvicorn logs it with its traceback
        return error(500, f"internal error ({type(e).__name__}); the server's log has the details")


def form_runs(text: str) -> list[str]:
    """Run ids sent as one comma-separated form field (ids are folder paths, which hold no comma here)."""
    runs = [r for r in text.split(",") if r]
    if not runs:
        raise UserError("choose at least one run")
    if len(runs) > limits.MAX_RUNS_PER_REQUEST:
        raise UserError(f"{len(runs)} runs chosen; compare at most {limits.MAX_RUNS_PER_REQUEST} at once")
    return runs


async def read_upload(upload: UploadFile, what: str, limit: int) -> bytes:
    return limits.check_size(what, await upload.read(limit + 1), limit)


def add_routes(app: FastAPI, server: Server) -> None:
    catalog = server.catalog

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/runs")
    async def runs() -> dict[str, Any]:
        entries = await asyncio.to_thread(catalog.entries, True)
        return {"root": str(catalog.root), "runs": [e.public() for e in entries],
                "hints": {tab: hint for tab, hint in TABS.values()},
                "limits": {name.lower(): value for name, value in vars(limits).items() if name.startswith("MAX_")}}

    @app.get("/api/runs/{run_id:path}")
    async def details(run_id: str) -> dict[str, Any]:
        return await server.compute(run_details, catalog, run_id)

    # -- digits ----------------------------------------------------------------------------------------
    @app.post("/api/digits")
    async def digits(image: Annotated[UploadFile, File()], runs: Annotated[str, Form()],
                     maps: Annotated[str, Form()] = "") -> dict[str, Any]:
        data = await read_upload(image, "image", limits.MAX_IMAGE_BYTES)
        return await server.compute(classify_image, catalog, data, form_runs(runs), maps)

    # -- text ------------------------------------------------------------------------------------------
    @app.post("/api/text")
    async def text(request: Request) -> StreamingResponse:
        body = await json_body(request)
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str) or len(prompt) > limits.MAX_PROMPT_CHARS:
            raise UserError(f"the prompt must be text of at most {limits.MAX_PROMPT_CHARS:,} characters"
                            + (f"; it has {len(prompt):,}" if isinstance(prompt, str) else ""))
        options = {"tokens": limits.check_bounded("tokens", body.get("tokens", 200), 1, limits.MAX_TOKENS),
                   "temperature": number(body, "temperature", 1.0), "top_k": optional_int(body, "top_k"),
                   "top_p": optional_number(body, "top_p"), "seed": body.get("seed", 0)}
        check_text_options(options)  # bad options are a 400 before the stream starts, as is an unknown run
        catalog.entry(body.get("run"), "text")
        if server.gate.full():
            raise Busy(server.gate.busy_message())
        return StreamingResponse(stream_text(server, body["run"], prompt, options), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    # -- translate -------------------------------------------------------------------------------------
    @app.post("/api/translate")
    async def translate(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        sentence = limits.check_text("the sentence", body.get("sentence"), limits.MAX_SENTENCE_CHARS,
                                     "Ein Mann fährt Fahrrad.")
        beam = limits.check_bounded("beam", body.get("beam", 1), 1, limits.MAX_BEAM)
        layer, head = body.get("layer", -1), body.get("head", -1)
        for what, value in (("layer", layer), ("head", head)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{what} must be an integer")
        return await server.compute(translate_sentence, catalog, body.get("run"), sentence, beam, layer, head)

    # -- images ----------------------------------------------------------------------------------------
    @app.post("/api/images")
    async def images(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        n = limits.check_bounded("samples", body.get("n", 16), 1, limits.MAX_GRID)
        frames = limits.check_bounded("frames", body.get("frames", 16), 2, limits.MAX_FRAMES)
        class_index = optional_int(body, "class_index")
        from archzoo.tasks.base import check_seed

        seed = check_seed(body.get("seed", 0))
        return await server.compute(sample_images, catalog, body.get("run"), seed, n, frames, class_index)

    # -- sentiment -------------------------------------------------------------------------------------
    @app.post("/api/sentiment")
    async def sentiment(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        sentence = limits.check_text("the sentence", body.get("sentence"), limits.MAX_SENTENCE_CHARS,
                                     "a gripping, funny film")
        runs = body.get("runs")
        if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
            raise UserError("choose at least one run")
        return await server.compute(classify_sentence, catalog, form_runs(",".join(runs)), sentence)

    # -- forecast --------------------------------------------------------------------------------------
    @app.post("/api/forecast")
    async def forecast(run: Annotated[str, Form()], split: Annotated[str, Form()] = "test",
                       window: Annotated[int, Form()] = -1, horizon: Annotated[int | None, Form()] = None,
                       channel: Annotated[str, Form()] = "",
                       series: Annotated[UploadFile | None, File()] = None) -> dict[str, Any]:
        data = await read_upload(series, "CSV file", limits.MAX_CSV_BYTES) if series is not None else None
        name = series.filename if series is not None and series.filename else "the uploaded CSV"
        return await server.compute(forecast_series, catalog, run, split, window, horizon, channel or None,
                                    data, Path(name).name)

    # -- speech ----------------------------------------------------------------------------------------
    @app.post("/api/speech")
    async def speech(audio: Annotated[UploadFile, File()], runs: Annotated[str, Form()],
                     beam: Annotated[int, Form()] = 0) -> dict[str, Any]:
        data = await read_upload(audio, "WAV file", limits.MAX_WAV_BYTES)
        width = None if beam == 0 else limits.check_bounded("beam", beam, 1, limits.MAX_BEAM)  # 0: the run's own
        name = upload_name(audio.filename)
        limits.check_wav(data, name)  # the header, before any sample is decoded
        return await server.compute(transcribe_upload, catalog, data, name, form_runs(runs), width)

    # -- hopfield --------------------------------------------------------------------------------------
    @app.post("/api/hopfield")
    async def hopfield(request: Request) -> dict[str, Any]:
        from archzoo.tasks.base import check_seed

        body = await json_body(request)
        runs = body.get("runs")
        if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
            raise UserError("choose at least one run")
        pattern = optional_int(body, "pattern")
        if pattern is None or pattern < 0:
            raise UserError("choose a stored image (pattern 0, 1, ...)")
        occluded = body.get("occlude", False)
        if not isinstance(occluded, bool):
            raise UserError(f"occlude must be true or false, got {occluded!r}")
        corrupt = None if occluded else number(body, "corrupt", 0.3)
        if corrupt is not None and not 0 <= corrupt <= 1:
            raise UserError(f"corrupt is the fraction of pixels to flip, in [0, 1]; got {corrupt:g}")
        seed = check_seed(body.get("seed", 0))
        return await server.compute(recall_pattern, catalog, form_runs(",".join(runs)), pattern, corrupt, occluded, seed)

    # -- lab -------------------------------------------------------------------------------------------
    @app.get("/api/lab")
    async def lab_pages() -> dict[str, Any]:
        return await asyncio.to_thread(server.lab.listing)

    @app.get("/api/lab/{page_id}")
    async def lab_page(page_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(server.lab.page, page_id)

    # -- models ----------------------------------------------------------------------------------------
    @app.get("/api/models")
    async def models() -> dict[str, Any]:
        return {"models": await asyncio.to_thread(model_list)}

    @app.get("/api/models/{name}")
    async def model_info(name: str) -> dict[str, Any]:
        from archzoo.models.summary import describe

        table = await server.compute(describe, name)
        trained = [e.id for e in catalog.entries() if e.model == name]
        return {"name": name, "table": table, "runs": trained}


# -- request parsing ---------------------------------------------------------------------------------
async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise UserError("the request is not JSON") from None
    if not isinstance(body, dict):
        raise UserError("the request must be a JSON object")
    return body


def number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{key} must be a number, got {value!r}")
    return float(value)


def optional_number(body: dict[str, Any], key: str) -> float | None:
    return None if body.get(key) in (None, "") else number(body, key, 0.0)


def optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key} must be an integer, got {value!r}")
    return value


def check_text_options(options: dict[str, Any]) -> None:
    """The sampling options as the task checks them (its messages without the CLI's dashes)."""
    from archzoo.tasks.base import check_seed
    from archzoo.tasks.sampling import check_sampling

    try:
        check_sampling(options["temperature"], options["top_k"], options["top_p"])
        check_seed(options["seed"])
    except UserError as e:
        raise UserError(str(e).removeprefix("--")) from None


# -- the work, in worker threads ---------------------------------------------------------------------
def run_details(catalog: Catalog, run_id: str) -> dict[str, Any]:
    """What the page needs to offer a run's options: its classes, attention, variables and windows."""
    entry = catalog.entry(run_id)
    run = catalog.load(run_id)
    task, model = run.task, run.model
    out: dict[str, Any] = {**entry.public(), "verbs": list(run.verbs), "parameters": sum(p.numel() for p in model.parameters())}
    if entry.task in ("classification", "sentence_classification", "image_generation"):
        out["classes"] = list(task.classes)
    if entry.task == "image_generation":
        out["conditional"] = bool(model.num_classes)
    if entry.task == "translation":
        out["attention"] = model.attention_kind
        out["pair"] = task.pair
    if entry.task == "forecasting":
        out["columns"] = list(task.series.columns)
        out["windows"] = {split: len(starts) for split, starts in task.starts.items()}
        out["look_back"], out["horizon"] = task.cfg.seq_len, task.cfg.horizon
    if entry.task == "language_model":
        out["layout"] = task.layout
    if entry.task == "associative_memory":
        out.update(stored_patterns(run))
    if entry.task in ("spoken_digits", "connected_digits"):
        out["classes"], out["max_seconds"] = list(task.classes), task.cfg.max_seconds
        if entry.task == "connected_digits":
            out["beam_size"] = task.cfg.beam_size
    return out


def classify_image(catalog: Catalog, data: bytes, run_ids: list[str], maps_run: str) -> dict[str, Any]:
    """Each run's class probabilities for one image; the feature maps of ``maps_run``'s first two
    convolution layers; the pixels each model saw."""
    from archzoo.data.images import open_user_image

    image = open_user_image(io.BytesIO(data), "the image", limits.MAX_IMAGE_PIXELS)
    results = []
    for run_id in run_ids:
        start = time.perf_counter()
        try:
            run = catalog.load(run_id, "digits")
            result: dict[str, Any] = {"run": run_id}
            if run_id == maps_run:
                try:
                    p = run.predict(image, top=1, feature_maps=2)
                    result["maps"] = [{"layer": name, "channels": int(m.shape[1]), "size": list(m.shape[2:]),
                                       "png": tiles_url(m[0, :MAP_CHANNELS])} for name, m in p.feature_maps]
                except UserError as e:
                    p, result["maps_note"] = run.predict(image, top=1), str(e)
            else:
                p = run.predict(image, top=1)
            result["label"] = p.labels[0]
            result["probs"] = [{"class": c, "p": round(float(v), 6)} for c, v in zip(p.classes, p.probs[0], strict=True)]
            result["input"] = pixels_url(p.inputs[0])
        except UserError as e:
            result = {"run": run_id, "error": str(e)}
        result["ms"] = round(1000 * (time.perf_counter() - start), 1)
        results.append(result)
    return {"results": results}


class Cancelled(Exception):
    """The page that asked for the text has gone."""


class PieceWriter:
    """A text stream (what ``sample(stream=...)`` writes to) that hands each piece to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, cancelled: threading.Event):
        self.loop, self.queue, self.cancelled = loop, queue, cancelled

    def write(self, piece: str) -> int:
        if self.cancelled.is_set():
            raise Cancelled
        self.loop.call_soon_threadsafe(self.queue.put_nowait, {"text": piece})
        return len(piece)

    def flush(self) -> None:
        pass


async def stream_text(server: Server, run_id: str, prompt: str, options: dict[str, Any]) -> AsyncIterator[bytes]:
    """One sample from a language model as JSON lines: {"queued": n} while waiting for a worker, {"text":
    piece} as the model writes, then {"done": ..., "tokens": ..., "tokens_per_s": ...} or {"error": ...}."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()

    def work() -> None:
        try:
            run = server.catalog.load(run_id, "text")
            result = run.sample(1, prompt=prompt, stream=PieceWriter(loop, pieces, cancelled), unknown="skip", **options)
            done = {"done": True, "tokens": result.tokens, "seconds": round(result.seconds, 4),
                    "tokens_per_s": round(result.tokens / result.seconds, 1) if result.seconds else None,
                    "notes": result.notes}
        except Cancelled:
            return
        except UserError as e:
            done = {"error": str(e)}
        loop.call_soon_threadsafe(pieces.put_nowait, done)

    async def produce() -> None:
        try:
            await server.compute(work)
        except Busy as e:
            pieces.put_nowait({"error": str(e)})
        except Exception as e:  # noqa: BLE001  (the page gets one line; the log gets the traceback)
            log.error("internal error while generating text", exc_info=e)
            pieces.put_nowait({"error": f"internal error ({type(e).__name__}); the server's log has the details"})

    if server.gate.busy():
        yield (json.dumps({"queued": server.gate.waiting + 1}) + "\n").encode()
    producer = asyncio.ensure_future(produce())
    try:
        while True:
            item = await pieces.get()
            yield (json.dumps(item) + "\n").encode()
            if "done" in item or "error" in item:
                break
    finally:
        cancelled.set()
        del producer  # it ends on its own: the worker stops at its next piece


def translate_sentence(catalog: Catalog, run_id: object, sentence: str, beam: int, layer: int, head: int) -> dict[str, Any]:
    """One translation and, for a model with attention, its heatmap (one decoder layer and head, or the
    mean of the heads, for a Transformer)."""
    run = catalog.load(run_id, "translate")
    start = time.perf_counter()
    attention = run.model.attention_kind != "none"
    t = run.translate(sentence, beam=beam, attention=attention)
    ms = round(1000 * (time.perf_counter() - start), 1)
    out: dict[str, Any] = {"run": run_id, "text": t.texts[0], "notes": t.notes, "ms": ms, "heatmap": None}
    if attention:
        weights = t.attention
        out["layers"], out["heads"] = (int(weights.shape[1]), int(weights.shape[2])) if weights.dim() == 4 else (0, 0)
        try:
            out["heatmap"] = plotted(lambda path: t.plot_attention(path, layer=layer, head=head))
        except UserError as e:  # the CLI's wording: --layer, --head
            raise UserError(str(e).replace("--", "")) from None
    else:
        out["note"] = f"{type(run.model).__name__} has no attention: it condenses the sentence into one vector"
    return out


def sample_images(catalog: Catalog, run_id: object, seed: object, n: int, frames: int,
                  class_index: int | None) -> dict[str, Any]:
    """A grid of ``n`` samples and a strip of ``frames`` images between two latent points, from ``seed``."""
    run = catalog.load(run_id, "images")
    grid = run.sample(n, seed=seed, class_index=class_index)
    strip = run.sample(frames, seed=seed, class_index=class_index, interpolate=True)
    return {"run": run_id, "grid": plotted(grid.save), "caption": grid.caption,
            "frames": [pixels_url(image) for image in strip.images]}


def classify_sentence(catalog: Catalog, run_ids: list[str], sentence: str) -> dict[str, Any]:
    results = []
    for run_id in run_ids:
        try:
            p = catalog.load(run_id, "sentiment").predict(sentence)
            results.append({"run": run_id, "label": p.labels[0],
                            "probs": [{"class": c, "p": round(float(v), 6)} for c, v in zip(p.classes, p.probs[0], strict=True)]})
        except UserError as e:
            results.append({"run": run_id, "error": str(e)})
    return {"results": results}


def forecast_series(catalog: Catalog, run_id: str, split: str, window: int, horizon: int | None, channel: str | None,
                    data: bytes | None, name: str) -> dict[str, Any]:
    """A forecast of a window of the run's own series (with the truth beside it) or after an uploaded CSV."""
    from archzoo.data.timeseries import parse_series_csv

    run = catalog.load(run_id, "forecast")
    trained = run.task.cfg.horizon
    if horizon is not None:
        limits.check_bounded("horizon", horizon, 1, limits.MAX_HORIZON_FACTOR * trained)
    if data is not None:
        series = parse_series_csv(data, name, run.task.series.columns)
        f = run.forecast(series.values, horizon=horizon)
        where = f"after the last row of {name}"
    else:
        f = run.forecast(horizon=horizon, split=split, window=window)
        where = f"{split} window {window}"
    column = f.columns[f.channel_index(channel)]
    title = f"{run.config.model.name}: {column}, {len(f.forecast)} steps ({where})"
    return {"run": run_id, "plot": plotted(lambda path: f.plot(path, channel, title)), "table": f.lines(channel),
            "column": column, "where": where}


def model_list() -> list[dict[str, str]]:
    """Every registered model, its family (module) and the first line of its class's docstring."""
    from archzoo.models import MODELS, list_models

    out = []
    for name in list_models():
        builder = MODELS.get(name)
        returned = typing.get_type_hints(builder).get("return")
        doc = (builder.__doc__ or getattr(returned, "__doc__", None) or "").strip().split("\n")[0]
        out.append({"name": name, "family": builder.__module__.rsplit(".", 1)[-1], "summary": doc})
    return out


def uvicorn_server(app: FastAPI, log_requests: bool = False) -> Any:
    """The uvicorn server for ``app``; ``.run(sockets=[sock])`` serves until Ctrl-C (or ``should_exit``)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="info" if log_requests else "warning", access_log=log_requests,
                            server_header=False, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)
