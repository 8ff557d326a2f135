"""Run folders: never written over a user's files, one training at a time, status on disk.

A new run needs a new or empty folder; a folder holding a run is continued with ``--resume`` or
replaced with ``--overwrite``; a folder holding anything else is refused. A training holds an
exclusive lock on ``RUN/.lock`` (released by the OS when the process dies, however it dies), so a
second training into the same folder stops at once instead of mixing weights and metrics.
``status.json`` says how far the run got, for ``archzoo runs`` and for people.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
from archzoo.fileio import atomic_write_text, default_mode, write_error

LOCK, STATUS = ".lock", "status.json"
RUN_MARKERS = ("config.json", "checkpoints", STATUS, "model.safetensors")


def is_run_folder(path: Path) -> bool:
    return any((Path(path) / name).exists() for name in RUN_MARKERS)


def check_new(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse to start a new run in ``run_dir`` unless it is new, empty, or a run we may replace."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise UserError(f"cannot write to folder {run_dir}: it is a file; choose a run folder with --out")
    if not any(p.name != LOCK for p in run_dir.iterdir()):
        return
    if not is_run_folder(run_dir):
        raise UserError(f"{run_dir} is not empty and is not an archzoo run, so archzoo will not write into it; "
                        "choose a new or empty folder with --out")
    if not overwrite:
        status = read_status(run_dir)
        what = f"a {status['status']} run (step {status['step']})" if status else "a run"
        raise UserError(f"{run_dir} already holds {what}; continue it with `archzoo train --resume {run_dir}` "
                        "or replace it with --overwrite")


def clear(run_dir: Path) -> None:
    """Delete a previous run's files (not the lock we hold), so nothing of it mixes into the new one."""
    for p in Path(run_dir).iterdir():
        if p.name == LOCK:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock`` for the life of a training (a context manager)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, default_mode())
        except OSError as e:
            raise write_error(self.path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise UserError(f"{self.path.parent} is in use by another training (pid {holder or '?'}); wait for it "
                            "to finish or choose another folder with --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def new_run_dir(parent: Path, name: str) -> Path:
    """Create and return ``parent/name-YYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... when taken): made with an
    exclusive mkdir, so runs started in the same second, even in parallel, never share a folder."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(parent, e) from None
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise write_error(path, e) from None
    raise UserError(f"cannot find a free run folder name under {parent}; choose one with --out")


def is_locked(run_dir: Path) -> bool:
    """Whether a training holds ``RUN/.lock`` now (a status.json left at "running" by a killed process
    is not)."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def jsonable(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    """The plain values (numbers, strings, flags) of a result dict, for status.json."""
    if figures is None:
        return None
    return {k: v for k, v in figures.items() if isinstance(v, int | float | str | bool)}


def write_status(run_dir: Path, status: str, step: int, best: dict[str, Any] | None, test: dict[str, Any] | None,
                 train_seconds: float) -> None:
    record = {"status": status, "step": step, "best": jsonable(best), "test": jsonable(test),
              "train_seconds": round(train_seconds, 3),
              "updated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    path = Path(run_dir) / STATUS
    try:
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    except OSError as e:
        raise write_error(path, e) from None


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """``status.json`` of a run, or None when it is missing or unreadable."""
    try:
        record = json.loads((Path(run_dir) / STATUS).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"status", "step"} <= record.keys() else None
