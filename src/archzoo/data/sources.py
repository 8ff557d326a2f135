"""Where datasets come from: catalog entries, the data-dir search order, checksums, download, import.

Search order for every file of a dataset: ``--data-dir``, ``$ARCHZOO_DATA``, ``~/.cache/archzoo/data``,
then data built into the package. Folder and file names follow ``../shared/data`` (``mnist/t10k-...``),
so a copy of that tree works as a data dir as it is. Read-only folders are only ever read.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
from archzoo.fileio import atomic_writer, ensure_writable_dir
from archzoo.registry import Registry

BUILTIN_DIR = Path(__file__).parent / "builtin"
CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset. ``md5_alternatives`` accepts byte-different but equivalent upstream
    copies (MNIST's original train-images .gz differs from the recompressed staged one)."""

    name: str
    sha256: str
    size: int
    url: str
    md5_alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str
    description: str
    license: str
    citation: str
    splits: dict[str, str]
    files: tuple[FileSpec, ...]
    meta: dict[str, object] = field(default_factory=dict)

    def file(self, name: str) -> FileSpec:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.add(spec.name, spec)


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The data dirs in look-up order (existing or not)."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    if os.environ.get("ARCHZOO_DATA"):
        dirs.append(Path(os.environ["ARCHZOO_DATA"]).expanduser())
    dirs.append(default_cache_dir())
    dirs.append(BUILTIN_DIR)
    return dirs


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "archzoo" / "data"


def write_dir(data_dir: str | Path | None = None) -> Path:
    """Where ``fetch`` and ``import`` write: the first user-chosen data dir, else the cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("ARCHZOO_DATA"):
        return Path(os.environ["ARCHZOO_DATA"]).expanduser()
    return default_cache_dir()


def find_file(spec: DatasetSpec, name: str, data_dir: str | Path | None = None) -> Path | None:
    for root in search_dirs(data_dir):
        path = root / spec.folder / name
        if path.is_file():
            return path
    return None


def locate(spec: DatasetSpec, data_dir: str | Path | None = None, names: list[str] | None = None) -> dict[str, Path]:
    """Paths of the dataset's files (or of ``names``), checksum-verified; missing files raise one line."""
    wanted = names or [f.name for f in spec.files]
    found, missing = {}, []
    for name in wanted:
        path = find_file(spec, name, data_dir)
        if path is None:
            missing.append(name)
        else:
            verify_file(spec.file(name), path)
            found[name] = path
    if missing:
        looked = ", ".join(str(d / spec.folder) for d in search_dirs(data_dir))
        raise UserError(
            f"dataset {spec.name!r} is missing {_some(missing)}; looked in {looked}; "
            f"run `archzoo data fetch {spec.name}` (needs internet) or `archzoo data import {spec.name} FILE...`"
        )
    return found


def _some(names: list[str], shown: int = 6) -> str:
    """``names`` joined, cut after ``shown`` with the count left (a dataset may have thousands of files)."""
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


_verified: dict[tuple[object, ...], bool] = {}


def file_digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def verify_file(fspec: FileSpec, path: Path) -> None:
    """Raise UserError unless ``path`` has the catalogued sha256 (or an accepted upstream md5)."""
    stat = path.stat()
    # ctime changes on every write and cannot be set back (mtime can, with os.utime or `touch -r`)
    key = (fspec, str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if _verified.get(key):
        return
    sha, md5 = file_digests(path)
    if sha != fspec.sha256 and md5 not in fspec.md5_alternatives:
        raise UserError(
            f"checksum mismatch for {path}: sha256 {sha[:16]}... but expected {fspec.sha256[:16]}...; "
            "the file is corrupt or not the right one: delete it and run `archzoo data fetch`"
        )
    _verified[key] = True


def fetch(spec: DatasetSpec, data_dir: str | Path | None = None, mirror: str | None = None,
          progress: bool = True) -> Path:
    """Download the missing files of ``spec`` with resume (HTTP Range) and checksum verification.

    ``mirror`` replaces each file's canonical URL with ``mirror/<folder>/<name>`` (a copy of the
    ../shared/data layout served over HTTP). Returns the folder the dataset is in; when every file
    is already present (anywhere in the search path) nothing is written at all.
    """
    if mirror is not None:
        _check_url(mirror, "--mirror")
    missing, folders = [], set()
    for fspec in spec.files:
        present = find_file(spec, fspec.name, data_dir)
        if present is None:
            missing.append(fspec)
        else:
            verify_file(fspec, present)
            folders.add(present.parent)
    if not missing:
        return folders.pop() if len(folders) == 1 else write_dir(data_dir) / spec.folder
    dest = ensure_writable_dir(write_dir(data_dir) / spec.folder, "choose another folder with --data-dir")
    for fspec in missing:
        if not (mirror or fspec.url):
            raise UserError(f"{spec.name}/{fspec.name} ships inside the archzoo package and has no download URL; "
                            "reinstall archzoo to restore it")
        url = f"{mirror.rstrip('/')}/{spec.folder}/{fspec.name}" if mirror else fspec.url
        part = dest / (fspec.name + ".part")
        _download(url, part, fspec.size, progress)
        try:
            verify_file(fspec, part)
        except UserError:
            part.unlink()
            raise UserError(f"downloaded {url} but its checksum does not match the catalogue, so it was deleted; "
                            "the server sent a different file: try again or use --mirror") from None
        os.replace(part, dest / fspec.name)
    return dest


def _check_url(url: str, what: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL"
        parts = urllib.parse.SplitResult("", "", "", "", "")
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise UserError(f"{what} {url!r} is not a URL; give one like https://example.org/data or file:///srv/data")


def _download(url: str, part: Path, size: int, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with a Range request); at most ``size`` bytes.

    A download cut short keeps ``part`` for the next try to resume; a server sending more than
    ``size`` bytes is stopped and its file deleted.
    """
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    if have >= size:
        return
    response = _open(url, have)
    if have and (response.status != 206 or not response.headers.get("Content-Range", "").startswith(f"bytes {have}-")):
        response.close()  # the server ignored Range, or answered another range: start over
        have = 0
        response = _open(url, 0)
    with response:
        try:
            with open(part, "ab" if have else "wb") as f, tqdm(
                    total=size, initial=have, unit="B", unit_scale=True,
                    desc=part.name.removesuffix(".part"), disable=not progress) as bar:
                while chunk := _read(response, min(CHUNK, size - have + 1), url, have, size):
                    have += len(chunk)
                    if have > size:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
        except OSError as e:
            raise UserError(f"cannot write {part} ({e.strerror or e}); free some space or choose another --data-dir") from None
    if have > size:
        part.unlink()
        raise UserError(f"{url} is larger than the catalogued {size:,} bytes, so it is not the right file "
                        "and was deleted; try again or use --mirror")
    if have < size:
        raise UserError(f"download of {url} ended after {have:,} of {size:,} bytes; "
                        "run the same command again to resume")


def _read(response: Any, n: int, url: str, have: int, size: int) -> bytes:
    try:
        return response.read(n)
    except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
        raise UserError(f"download of {url} was cut off after {have:,} of {size:,} bytes ({type(e).__name__}); "
                        "run the same command again to resume") from None


def _open(url: str, have: int) -> Any:  # an http.client.HTTPResponse, or urllib's addinfourl for file://
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        return urllib.request.urlopen(request, timeout=60)
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError is an OSError
        reason = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or e
        raise UserError(f"cannot download {url} ({reason}); check the network, or import the file "
                        "with `archzoo data import`") from None


def import_files(spec: DatasetSpec, sources: list[str | Path], data_dir: str | Path | None = None) -> list[Path]:
    """Verify user files against the catalogue (matched by checksum) and copy them in atomically.

    Every file is checked before any is copied, so a refused import changes nothing.
    """
    by_digest = {f.sha256: f for f in spec.files} | {m: f for f in spec.files for m in f.md5_alternatives}
    matched: list[tuple[Path, FileSpec]] = []
    for src in map(Path, sources):
        if not src.is_file():
            raise UserError(f"cannot import {src}: no such file")
        try:
            sha, md5 = file_digests(src)
        except OSError as e:
            raise UserError(f"cannot import {src}: {e.strerror or e}") from None
        fspec = by_digest.get(sha) or by_digest.get(md5)
        if fspec is None:
            raise UserError(f"{src} is none of the files of dataset {spec.name!r} (checksum matches none); "
                            f"expected one of: {_some([f.name for f in spec.files])}")
        matched.append((src, fspec))
    dest = ensure_writable_dir(write_dir(data_dir) / spec.folder, "choose another folder with --data-dir")
    written = []
    for src, fspec in matched:
        target = dest / fspec.name
        try:
            with open(src, "rb") as fin, atomic_writer(target) as fout:
                shutil.copyfileobj(fin, fout, CHUNK)
        except OSError as e:
            raise UserError(f"cannot copy {src} to {target}: {e.strerror or e}") from None
        written.append(target)
    return written
