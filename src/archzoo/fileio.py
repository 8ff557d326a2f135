"""Atomic file writes: a crash leaves either the old file or the new one, never a torn one."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from archzoo.errors import UserError

TEMP_SUFFIX = ".tmp"  # every temporary this module makes ends so; run folders sweep them on start


def ensure_writable_dir(path: str | Path, fix: str) -> Path:
    """Create ``path`` (and parents) or raise a UserError saying it cannot be written and ``fix``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot write to folder {path}: it is a file; {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as e:
        raise UserError(f"cannot write to folder {path} ({e.strerror}); {fix}") from None
    return path


def default_mode(directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give under the current umask (mkstemp and mkdtemp
    use 0600/0700, which would leave checkpoints unreadable to the group where the rest is not)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` survive a power cut."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_error(path: Path, e: OSError) -> UserError:
    """One line for a failed write: which file, why, and what to do (a full disk is the usual cause)."""
    fix = "free some space and try again" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "check the folder"
    return UserError(f"cannot write {path}: {e.strerror or e}; {fix}")


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file; on success it is fsynced and renamed over ``path`` (temp, fsync, rename).

    On any failure the temporary is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
