"""Where datasets come from: catalog entries, the data-dir search order, checksums, download, import.

Search order for every file of a dataset: ``--data-dir``, ``$ARCHZOO_DATA``, ``~/.cache/archzoo/data``,
then data built into the package. Folder and file names follow ``../shared/data`` (``mnist/t10k-...``),
so a copy of that tree works as a data dir as it is. Read-only folders are only ever read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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
            f"dataset {spec.name!r} is missing {', '.join(missing)}; looked in {looked}; "
            f"run `archzoo data fetch {spec.name}` (needs internet) or `archzoo data import {spec.name} FILE...`"
        )
    return found


_verified: dict[tuple[str, int, int], bool] = {}


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
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
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
    ../shared/data layout served over HTTP).
    """
    dest = ensure_writable_dir(write_dir(data_dir) / spec.folder)
    for fspec in spec.files:
        present = find_file(spec, fspec.name, data_dir)
        if present is not None:
            verify_file(fspec, present)
            continue
        target = dest / fspec.name
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
            raise UserError(f"downloaded {url} but its checksum does not match the catalogue; "
                            "the server sent a different file: try again or use --mirror") from None
        os.replace(part, target)
    return dest


def _download(url: str, part: Path, size: int, progress: bool) -> None:
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    if have >= size:
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"cannot download {url} ({reason}); check the network, or import the file "
                        "with `archzoo data import`") from None
    with response:
        if have and response.status != 206:  # server ignored Range: start over
            have = 0
        mode = "ab" if have else "wb"
        with open(part, mode) as f, tqdm(total=size, initial=have, unit="B", unit_scale=True,
                                         desc=part.name.removesuffix(".part"), disable=not progress) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))


def import_files(spec: DatasetSpec, sources: list[str | Path], data_dir: str | Path | None = None) -> list[Path]:
    """Verify user files against the catalogue (matched by checksum) and copy them in atomically."""
    dest = ensure_writable_dir(write_dir(data_dir) / spec.folder)
    by_digest = {f.sha256: f for f in spec.files} | {m: f for f in spec.files for m in f.md5_alternatives}
    written = []
    for src in map(Path, sources):
        if not src.is_file():
            raise UserError(f"cannot import {src}: no such file")
        sha, md5 = file_digests(src)
        fspec = by_digest.get(sha) or by_digest.get(md5)
        if fspec is None:
            raise UserError(f"{src} is none of the files of dataset {spec.name!r} (checksum matches none); "
                            f"expected one of: {', '.join(f.name for f in spec.files)}")
        with open(src, "rb") as fin, atomic_writer(dest / fspec.name) as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
        written.append(dest / fspec.name)
    return written
