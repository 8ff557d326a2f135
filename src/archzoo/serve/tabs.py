"""The work of the Speech and Hopfield tabs, in worker threads: each calls the chosen runs' own verbs
(``transcribe``, ``sample(...).recall()``) and turns their results into JSON with PNG data URLs."""

from __future__ import annotations

import re
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
from archzoo.serve import limits
from archzoo.serve.catalog import Catalog
from archzoo.serve.pictures import pixels_url, plotted


def upload_name(filename: str | None) -> str:
    """The upload's file name as the messages show it: no folders, no odd characters, at most 80 of them."""
    name = re.sub(r"[^\w.\- ]", "_", Path(filename or "").name).strip()[:80]
    return name if name.strip("._") else "recording.wav"


# -- speech ----------------------------------------------------------------------------------------
def transcribe_upload(catalog: Catalog, data: bytes, name: str, run_ids: list[str], beam: int | None) -> dict[str, Any]:
    """What every chosen speech run hears in one recording: an isolated-digit run's label with every
    class's probability, a connected-digit (CTC) run's digit string and best readings decoded greedily
    (``beam`` 1) or by prefix beam search (``beam``, default the run's), with a plot of the features and
    its per-frame posteriors. ``features`` is the first isolated-digit run's feature plot (what they hear)."""
    results: list[dict[str, Any]] = []
    features = None
    with tempfile.TemporaryDirectory(prefix="archzoo-serve-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)

        def named(text: str) -> str:  # the messages name the upload, not the server's temporary file
            return text.replace(str(path), name)

        for run_id in run_ids:
            start = time.perf_counter()
            try:
                run = catalog.load(run_id, "speech")
                connected = run.config.task == "connected_digits"
                classes = run.task.classes
                options = {"beam": beam} if connected and beam is not None else {}
                t = run.transcribe([path], top=limits.MAX_READINGS if connected else len(classes), posteriors=True,
                                   **options)
                text = t.texts[0]
                result: dict[str, Any] = {
                    "run": run_id, "kind": "connected" if connected else "isolated", "text": text,
                    "readings": [{"text": r, "p": round(p, 6)} for r, p in t.alternatives[0]],
                    "notes": [named(n) for n in t.notes]}
                what = f"{run.task.cfg.features} features"
                if connected:
                    width = beam or run.task.cfg.beam_size
                    result["decoding"] = "greedy (best path)" if width == 1 else f"prefix beam search, width {width}"
                    result["plot"] = plotted(partial(t.plot, index=0, title=f"{name}: {what} and per-frame posteriors; "
                                                                            f"recognised {text or '(nothing)'}"))
                else:
                    p = dict(t.alternatives[0])
                    result["probs"] = [{"class": c, "p": round(p.get(c, 0.0), 6)} for c in classes]
                    if features is None:
                        features = plotted(partial(t.plot, index=0, title=f"{name}: the {what} the isolated-digit runs read"))
            except UserError as e:
                result = {"run": run_id, "error": named(str(e))}
            result["ms"] = round(1000 * (time.perf_counter() - start), 1)
            results.append(result)
    return {"results": results, "features": features}


# -- hopfield --------------------------------------------------------------------------------------
def state_url(state: Any, image_shape: tuple[int, int]) -> str:
    """One state (N,) of ±1 (or continuous in between) as a greyscale image: -1 black, +1 white."""
    return pixels_url(((state.float().clamp(-1, 1) + 1) / 2).view(1, *image_shape))


def stored_patterns(run: Any) -> dict[str, Any]:
    """A Hopfield run's stored images for the page to pick from (the first MAX_PATTERNS_SHOWN)."""
    patterns = run.model.patterns.cpu()
    run.task.patterns()  # the stored images' size comes with them
    shape = run.task.image_shape
    return {"stored": len(patterns), "model_kind": type(run.model).__name__,
            "patterns": [state_url(p, shape) for p in patterns[:limits.MAX_PATTERNS_SHOWN]]}


def recall_pattern(catalog: Catalog, run_ids: list[str], pattern: int, corrupt: float | None, occluded: bool,
                   seed: int) -> dict[str, Any]:
    """Stored image ``pattern`` of each run, corrupted the same way (``corrupt`` of its pixels flipped from
    ``seed``, or its lower half erased) and recalled: the cue, the state after every step with its energy,
    the recall and how far it is from the stored image."""
    results = []
    for run_id in run_ids:
        start = time.perf_counter()
        try:
            run = catalog.load(run_id, "hopfield")
            r = run.sample(corrupt=None if occluded else corrupt, occlude=occluded or None, seed=seed,
                           pattern=pattern).recall()
            shape, wrong = r.image_shape, int((r.recalled[0] != r.stored[0]).sum())
            result: dict[str, Any] = {
                "run": run_id, "model_kind": type(run.model).__name__, "stored": state_url(r.stored[0], shape),
                "cue": state_url(r.cues[0], shape), "cue_bits": int((r.cues[0] != r.stored[0]).sum()),
                "steps": [state_url(s[0], shape) for s in r.states], "energies": [round(float(e[0]), 4) for e in r.energies],
                "recalled": state_url(r.recalled[0], shape), "bits_wrong": wrong, "bits": int(r.stored.shape[1]),
                "nearest": int(r.nearest[0]), "recovered": wrong == 0}
        except UserError as e:
            result = {"run": run_id, "error": str(e)}
        result["ms"] = round(1000 * (time.perf_counter() - start), 1)
        results.append(result)
    return {"results": results, "pattern": pattern}
