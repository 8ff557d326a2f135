"""The runs a server offers: found under its runs folder (as ``archzoo runs`` finds them), named by an id
that is the only thing a client may send, and loaded on first use with ``archzoo.load`` (safetensors
weights; a run whose weights change, because its training goes on, is loaded again)."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archzoo.errors import UserError

# The page's tab for each task, and how to get a first run for it (the command and about how long it takes
# on two CPU cores)
TABS: dict[str, tuple[str, str]] = {
    "classification": ("digits", "archzoo train mnist-fast (about a minute)"),
    "language_model": ("text", "archzoo train shakespeare-gpt-fast (under a minute) or names-lstm (2 minutes)"),
    "translation": ("translate", "archzoo train multi30k-attention (about an hour; needs the Multi30K data)"),
    "image_generation": ("images", "archzoo train mnist-cgan (a few minutes)"),
    "sentence_classification": ("sentiment", "archzoo train mr-textcnn (about 2 minutes; needs the MR data)"),
    "forecasting": ("forecast", "archzoo train airline-linear (seconds; needs the airline data)"),
    "spoken_digits": ("speech", "archzoo train spoken-digits-cnn (about 10 minutes) or connected-digits-bilstm "
                                "(about 25 minutes; both need the spoken-digits data)"),
    "connected_digits": ("speech", "archzoo train spoken-digits-cnn (about 10 minutes) or connected-digits-bilstm "
                                   "(about 25 minutes; both need the spoken-digits data)"),
    "associative_memory": ("hopfield", "archzoo train hopfield-mnist and hopfield-mnist-modern (seconds each)"),
}
RESCAN_SECONDS = 5.0  # the runs folder is listed again at most this often


@dataclass(frozen=True)
class RunEntry:
    """One run folder as the page lists it."""

    id: str  # the folder relative to the runs folder: what clients send
    folder: Path
    task: str
    model: str
    dataset: str
    status: str
    best: str
    test: str
    date: str

    @property
    def tab(self) -> str | None:
        return TABS[self.task][0] if self.task in TABS else None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "tab": self.tab, "model": self.model, "dataset": self.dataset,
                "status": self.status, "best": self.best, "test": self.test, "date": self.date}


class Catalog:
    """The runs under ``root``: listed on demand, each loaded once (``max_loaded`` at most stay in memory,
    the least recently used leave first) with ``archzoo.load(folder, device=..., data_dir=...)``."""

    def __init__(self, root: Path, device: str = "auto", data_dir: str | Path | None = None, max_loaded: int = 16):
        self.root, self.device, self.data_dir, self.max_loaded = Path(root), device, data_dir, max_loaded
        self._entries: dict[str, RunEntry] = {}
        self._scanned = float("-inf")
        self._loaded: collections.OrderedDict[str, tuple[tuple[str, int], Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def entries(self, rescan: bool = False) -> list[RunEntry]:
        """The runs that have weights, newest first; the folder is listed again when ``rescan`` or when the
        last listing is older than RESCAN_SECONDS."""
        with self._lock:
            if rescan or time.monotonic() - self._scanned > RESCAN_SECONDS:
                self._entries = {e.id: e for e in scan(self.root)}
                self._scanned = time.monotonic()
            return sorted(self._entries.values(), key=lambda e: e.date, reverse=True)

    def entry(self, run_id: object, tab: str | None = None) -> RunEntry:
        """The run with this id (one of the listed ones, never a path), for ``tab`` when given."""
        if not isinstance(run_id, str) or not run_id:
            raise UserError("choose a run")
        entries = {e.id: e for e in self.entries()}
        found = entries.get(run_id) or {e.id: e for e in self.entries(rescan=True)}.get(run_id)
        if found is None:
            raise UserError(f"no run {run_id!r} on this server; reload the page to see its runs")
        if tab is not None and found.tab != tab:
            raise UserError(f"{run_id} is a {found.task} run; choose one of the {tab} tab's runs")
        return found

    def load(self, run_id: object, tab: str | None = None) -> Any:
        """The loaded ``archzoo.api.Run`` (its task built), from the cache unless its weights changed."""
        from archzoo.api import load
        from archzoo.training.checkpoint import weights_path

        entry = self.entry(run_id, tab)
        weights = weights_path(entry.folder)
        signature = (str(weights), weights.stat().st_mtime_ns)
        with self._lock:
            cached = self._loaded.get(entry.id)
            if cached is not None and cached[0] == signature:
                self._loaded.move_to_end(entry.id)
                return cached[1]
            run = load(entry.folder, device=self.device, data_dir=self.data_dir)
            run.task  # noqa: B018  (build the task now, once, rather than in two requests at the same time)
            self._loaded[entry.id] = (signature, run)
            self._loaded.move_to_end(entry.id)
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
            return run


def scan(root: Path) -> list[RunEntry]:
    """Every run folder under ``root`` with weights to load (``archzoo runs``' discovery and summary)."""
    from archzoo.cli.runs import find_runs, read_json, run_summary
    from archzoo.training.checkpoint import weights_path

    if not root.is_dir():
        return []
    out = []
    for folder in find_runs(root):
        try:
            weights_path(folder)
        except UserError:
            continue  # not started: nothing to load yet
        config = read_json(folder / "config.json")
        config = config if isinstance(config, dict) else {}
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        data = config.get("data") if isinstance(config.get("data"), dict) else {}
        summary = run_summary(folder)
        run_id = folder.relative_to(root).as_posix()
        out.append(RunEntry(run_id if run_id != "." else folder.resolve().name, folder,
                            str(config.get("task", "classification")), str(model.get("name", "?")),
                            str(data.get("dataset", "?")), str(summary["status"]), str(summary["best"]),
                            str(summary["test"]), str(summary["date"])))
    return out
