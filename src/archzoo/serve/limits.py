"""What one request may ask for, and how many run at once: every bound the page's inputs meet, and the
gate that lets ``workers`` requests compute while at most ``queue`` more wait (the rest are turned away
with a message, HTTP 503, rather than piling up)."""

from __future__ import annotations

import asyncio

from archzoo.errors import UserError
from archzoo.tasks.base import check_count

MAX_BODY_BYTES = 8 << 20  # any request body: the largest upload (an image) with room for the form around it
MAX_IMAGE_BYTES = 4 << 20
MAX_IMAGE_PIXELS = 4096 * 4096  # a decompression bomb is refused before it is decoded
MAX_CSV_BYTES = 2 << 20
MAX_PROMPT_CHARS = 2_000
MAX_TOKENS = 2_000  # characters one text request generates
MAX_SENTENCE_CHARS = 1_000
MAX_BEAM = 10
MAX_GRID = 64  # GAN samples in one grid
MAX_FRAMES = 32  # images along one latent interpolation
MAX_HORIZON_FACTOR = 10  # a forecast reaches at most this many times the trained horizon
MAX_RUNS_PER_REQUEST = 16
MAX_WAV_BYTES = 4 << 20  # 20 s of 48 kHz 16-bit stereo fits; the speech runs take 8 kHz mono
MAX_WAV_SECONDS = 20.0  # the longest recording any speech run takes (connected digits; isolated ones take 5 s)
MAX_READINGS = 5  # a connected-digit run's best beams shown
MAX_PATTERNS_SHOWN = 100  # a Hopfield run's stored images offered to pick from
MAX_LAB_PAGE_BYTES = 1 << 20  # a lab report page (markdown) ...
MAX_LAB_FIGURE_BYTES = 4 << 20  # ... and each of its figures


def check_text(what: str, text: object, limit: int, example: str) -> str:
    """A non-empty string of at most ``limit`` characters."""
    if not isinstance(text, str):
        raise UserError(f"{what} must be text")
    if not text.strip():
        raise UserError(f"{what} is empty; type one, e.g. {example!r}")
    if len(text) > limit:
        raise UserError(f"{what} has {len(text):,} characters, more than {limit:,}; shorten it")
    return text


def check_size(what: str, data: bytes, limit: int) -> bytes:
    """An upload of 1 byte to ``limit`` bytes."""
    if not data:
        raise UserError(f"the {what} is empty; choose a file")
    if len(data) > limit:
        raise UserError(f"the {what} is {len(data) / 2**20:.1f} MiB, more than {limit / 2**20:.0f} MiB; "
                        "choose a smaller file")
    return data


def check_wav(data: bytes, name: str) -> None:
    """An uploaded recording's header, read before any sample is decoded: readable audio of at most
    MAX_WAV_SECONDS at a sample rate the reader takes."""
    import io

    import soundfile as sf

    from archzoo.data.audio import MAX_RATE, MIN_RATE

    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, EOFError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{name} is not readable audio ({first}); give a WAV file (mono, 16-bit PCM, 8 kHz like "
                        "the training recordings)") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise UserError(f"{name} has a sample rate of {info.samplerate:,} Hz; give a recording at {MIN_RATE:,}-"
                        f"{MAX_RATE:,} Hz (8 kHz like the training recordings)")
    if info.frames > MAX_WAV_SECONDS * info.samplerate:
        raise UserError(f"{name} is {info.frames / info.samplerate:.1f} s long, more than the page's "
                        f"{MAX_WAV_SECONDS:g} s; cut it into shorter recordings")


def check_bounded(what: str, value: object, low: int, high: int) -> int:
    """An integer option of the page in [low, high]."""
    return check_count(what, value, low, high, f"the page allows at most {high:,}; run the CLI for more")


class Busy(Exception):
    """Every worker is busy and the queue is full."""


class Gate:
    """At most ``workers`` requests compute at once, in arrival order; up to ``queue`` more wait for a
    worker, and one beyond that is refused at once (``Busy``) instead of waiting without bound.
    Used from the event loop only (``leave`` too: a worker thread schedules it there)."""

    def __init__(self, workers: int, queue: int):
        self.workers, self.queue = workers, queue
        self._free = asyncio.Semaphore(workers)
        self.waiting = 0  # requests waiting for a worker
        self.active = 0  # requests computing

    def busy(self) -> bool:
        """Whether a request arriving now has to wait."""
        return self._free.locked()

    def full(self) -> bool:
        """Whether a request arriving now is refused."""
        return self.busy() and self.waiting >= self.queue

    def busy_message(self) -> str:
        return (f"the server is busy: {self.active} requests are running and {self.waiting} waiting (at most "
                f"{self.queue}); try again in a moment")

    async def enter(self) -> None:
        """Wait for a worker (``Busy`` when the queue is full); pair with one ``leave``."""
        if self.full():
            raise Busy(self.busy_message())
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        self._free.release()
