"""Data sources (data/sources.py): look-up order, checksums, download with resume, import."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from archzoo.data import DATASETS
from archzoo.data import sources as src
from archzoo.data.sources import BUILTIN_DIR, DatasetSpec, FileSpec, fetch, find_file, import_files, locate, search_dirs
from archzoo.errors import UserError
from helpers import SHARED_DATA, needs_shared_data
from mirror_server import MirrorServer, closed_port_url, serve

LABELS = "t10k-labels-idx1-ubyte.gz"
BUILTIN_LABELS = BUILTIN_DIR / "mnist-small" / LABELS


def one_line(excinfo: pytest.ExceptionInfo[UserError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def plant(root: Path, folder: str = "mnist-small", name: str = LABELS, source: Path = BUILTIN_LABELS) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(source, root / folder / name))


# ---------------------------------------------------------------- look-up order


def test_search_order_is_data_dir_env_cache_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_DATA", str(tmp_path / "env"))
    assert search_dirs(tmp_path / "flag") == [tmp_path / "flag", tmp_path / "env",
                                              tmp_path / "cache" / "archzoo" / "data", BUILTIN_DIR]
    monkeypatch.delenv("ARCHZOO_DATA")
    assert search_dirs() == [tmp_path / "cache" / "archzoo" / "data", BUILTIN_DIR]


def test_find_file_takes_the_first_dir_that_has_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DATASETS.get("mnist-small")
    flag, env, cache = tmp_path / "flag", tmp_path / "env", tmp_path / "cache" / "archzoo" / "data"
    monkeypatch.setenv("ARCHZOO_DATA", str(env))
    planted = {root: plant(root) for root in (flag, env, cache)}
    assert find_file(spec, LABELS, flag) == planted[flag]
    planted[flag].unlink()
    assert find_file(spec, LABELS, flag) == planted[env]
    planted[env].unlink()
    assert find_file(spec, LABELS, flag) == planted[cache]
    planted[cache].unlink()
    assert find_file(spec, LABELS, flag) == BUILTIN_LABELS
    # locate verifies whatever it found: the built-in subset is complete and intact
    assert set(locate(spec, flag)) == {f.name for f in spec.files}


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHZOO_DATA", str(tmp_path / "env"))
    with pytest.raises(UserError) as excinfo:
        locate(DATASETS.get("mnist"), tmp_path / "flag")
    message = one_line(excinfo)
    for looked in (tmp_path / "flag" / "mnist", tmp_path / "env" / "mnist", tmp_path / "cache" / "archzoo" / "data" / "mnist"):
        assert str(looked) in message
    assert "archzoo data fetch mnist" in message and "archzoo data import mnist" in message
    assert LABELS in message


def test_checksum_mismatch_is_a_user_error(tmp_path: Path) -> None:
    bad = plant(tmp_path)  # shadows the intact built-in copy
    flip_byte(bad, 100)
    with pytest.raises(UserError) as excinfo:
        locate(DATASETS.get("mnist-small"), tmp_path, [LABELS])
    message = one_line(excinfo)
    assert "checksum mismatch" in message and str(bad) in message


def test_verify_cache_does_not_hide_a_changed_file(tmp_path: Path) -> None:
    fspec = DATASETS.get("mnist-small").file(LABELS)
    path = plant(tmp_path)
    src.verify_file(fspec, path)
    src.verify_file(fspec, path)  # cached
    before = path.stat()
    flip_byte(path, 200)  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime, as `touch -r` or a restore would
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(UserError, match="checksum mismatch"):
        src.verify_file(fspec, path)


def test_md5_alternative_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"an equivalent upstream copy")
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    src.verify_file(FileSpec("f.bin", "0" * 64, path.stat().st_size, "", (md5,)), path)
    with pytest.raises(UserError):
        src.verify_file(FileSpec("f.bin", "0" * 64, path.stat().st_size, "", ("1" * 32,)), path)


# ---------------------------------------------------------------- fetch


@pytest.fixture
def no_env_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch skips files found anywhere in the search path; hide the staged data from it."""
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)


@pytest.fixture
def mirror() -> Iterator[MirrorServer]:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("../shared/data/mnist not staged")
    with serve(SHARED_DATA) as server:
        yield server


def assert_files_equal_staged(folder: Path, dataset: str = "mnist") -> None:
    spec = DATASETS.get(dataset)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in spec.files)  # no .part, no temp files
    for f in spec.files:
        assert (folder / f.name).read_bytes() == (SHARED_DATA / spec.folder / f.name).read_bytes()


@pytest.mark.usefixtures("no_env_data")
def test_fetch_downloads_and_verifies_every_file(tmp_path: Path, mirror: MirrorServer) -> None:
    dest = fetch(DATASETS.get("mnist"), tmp_path / "data", mirror=mirror.url + "/", progress=False)
    assert dest == tmp_path / "data" / "mnist"
    assert_files_equal_staged(dest)
    assert sorted(path for path, _ in mirror.requests) == sorted(f"/mnist/{f.name}" for f in DATASETS.get("mnist").files)
    assert all(rng is None for _, rng in mirror.requests)
    # the files are now found, so a second fetch downloads nothing
    fetch(DATASETS.get("mnist"), tmp_path / "data", mirror=mirror.url, progress=False)
    assert len(mirror.requests) == 4


@pytest.mark.usefixtures("no_env_data")
def test_fetch_resumes_a_partial_download_with_range(tmp_path: Path, mirror: MirrorServer) -> None:
    spec = DATASETS.get("mnist")
    name = "t10k-images-idx3-ubyte.gz"
    whole = (SHARED_DATA / "mnist" / name).read_bytes()
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    (folder / (name + ".part")).write_bytes(whole[: len(whole) // 2])
    fetch(spec, tmp_path / "data", mirror=mirror.url, progress=False)
    assert (f"/mnist/{name}", f"bytes={len(whole) // 2}-") in mirror.requests
    assert_files_equal_staged(folder)


@pytest.mark.usefixtures("no_env_data")
def test_fetch_starts_over_when_the_server_ignores_range(tmp_path: Path, mirror: MirrorServer) -> None:
    mirror.honour_range = False
    name = "t10k-labels-idx1-ubyte.gz"
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    (folder / (name + ".part")).write_bytes(b"junk that must not end up in front of the file")
    fetch(DATASETS.get("mnist"), tmp_path / "data", mirror=mirror.url, progress=False)
    assert_files_equal_staged(folder)


@pytest.mark.usefixtures("no_env_data")
def test_cut_off_download_keeps_the_part_and_the_next_fetch_resumes(tmp_path: Path, mirror: MirrorServer) -> None:
    spec = DATASETS.get("fashion-mnist")
    mirror.cut_after = 3000  # promise the whole file, send 3,000 bytes, hang up
    with pytest.raises(UserError) as excinfo:
        fetch(spec, tmp_path / "data", mirror=mirror.url, progress=False)
    assert "run the same command again to resume" in one_line(excinfo)
    folder = tmp_path / "data" / "fashion-mnist"
    parts = list(folder.glob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size <= 3000
    have = parts[0].stat().st_size
    # second try: only the small label files, so the test stays fast
    mirror.cut_after = None
    small = DatasetSpec(**{**spec.__dict__, "files": tuple(f for f in spec.files if f.name == parts[0].stem)})
    fetch(small, tmp_path / "data", mirror=mirror.url, progress=False)
    assert (f"/fashion-mnist/{parts[0].stem}", f"bytes={have}-") in mirror.requests
    assert (folder / parts[0].stem).read_bytes() == (SHARED_DATA / "fashion-mnist" / parts[0].stem).read_bytes()
    assert not parts[0].exists()


def only_labels(name: str) -> DatasetSpec:
    spec = DATASETS.get(name)
    return DatasetSpec(**{**spec.__dict__, "files": tuple(f for f in spec.files if "labels" in f.name)})


@pytest.mark.usefixtures("no_env_data")
@pytest.mark.parametrize(("mangle", "needle"), [
    (lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:], "checksum does not match"),
    (lambda data: data + b"\0" * 64, "larger than the catalogued"),
])
def test_server_sending_wrong_bytes_leaves_no_file(tmp_path: Path, mirror: MirrorServer,
                                                   mangle: Callable[[bytes], bytes], needle: str) -> None:
    mirror.mangle = mangle
    with pytest.raises(UserError) as excinfo:
        fetch(only_labels("mnist"), tmp_path / "data", mirror=mirror.url, progress=False)
    assert needle in one_line(excinfo)
    assert list((tmp_path / "data" / "mnist").iterdir()) == []


@pytest.mark.usefixtures("no_env_data")
def test_missing_file_on_server_is_a_user_error(tmp_path: Path, mirror: MirrorServer) -> None:
    with pytest.raises(UserError) as excinfo:
        fetch(only_labels("mnist"), tmp_path / "data", mirror=mirror.url + "/nowhere", progress=False)
    assert "404" in one_line(excinfo) or "Not Found" in str(excinfo.value)


@pytest.mark.usefixtures("no_env_data")
def test_unreachable_server_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as excinfo:
        fetch(only_labels("mnist"), tmp_path / "data", mirror=closed_port_url(), progress=False)
    message = one_line(excinfo)
    assert "cannot download" in message and "archzoo data import" in message
    assert not any((tmp_path / "data" / "mnist").iterdir())


@pytest.mark.usefixtures("no_env_data")
@pytest.mark.parametrize("url", ["127.0.0.1", "localhost/data", "ftp://127.0.0.1/x", "http://127.0.0.1:port/", "http://[::1/"])
def test_malformed_mirror_is_a_user_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(UserError) as excinfo:
        fetch(only_labels("mnist"), tmp_path / "data", mirror=url, progress=False)
    one_line(excinfo)


@needs_shared_data
def test_fetch_of_a_present_dataset_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything found (here in a read-only ARCHZOO_DATA): no download, no write probe, no error."""
    target = tmp_path / "not-created"
    monkeypatch.setenv("ARCHZOO_DATA", str(SHARED_DATA))
    assert fetch(DATASETS.get("mnist"), target, mirror=closed_port_url(), progress=False) == SHARED_DATA / "mnist"
    assert not target.exists()


@pytest.mark.usefixtures("no_env_data")
def test_fetch_into_a_path_that_cannot_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError) as excinfo:
        fetch(only_labels("mnist"), tmp_path / "file" / "data", mirror=closed_port_url(), progress=False)
    assert "cannot write to folder" in one_line(excinfo)


@needs_shared_data
@pytest.mark.usefixtures("no_env_data")
def test_fetch_from_a_file_url_mirror(tmp_path: Path) -> None:
    dest = fetch(only_labels("fashion-mnist"), tmp_path / "data", mirror=SHARED_DATA.as_uri(), progress=False)
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (dest / name).read_bytes() == (SHARED_DATA / "fashion-mnist" / name).read_bytes()


# ---------------------------------------------------------------- import


def test_import_copies_a_real_file_matched_by_checksum(tmp_path: Path) -> None:
    source = tmp_path / "downloads" / "whatever-name.gz"
    source.parent.mkdir()
    shutil.copyfile(BUILTIN_LABELS, source)
    written = import_files(DATASETS.get("mnist"), [source], tmp_path / "data")
    target = tmp_path / "data" / "mnist" / LABELS
    assert written == [target]
    assert target.read_bytes() == BUILTIN_LABELS.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == [LABELS]  # no temp file left behind
    assert find_file(DATASETS.get("mnist"), LABELS, tmp_path / "data") == target


def test_import_is_atomic_when_the_copy_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_copy(fin: BinaryIO, fout: BinaryIO, length: int) -> None:
        fout.write(fin.read(1000))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(src.shutil, "copyfileobj", failing_copy)
    with pytest.raises(UserError, match="No space left"):
        import_files(DATASETS.get("mnist"), [BUILTIN_LABELS], tmp_path / "data")
    assert list((tmp_path / "data" / "mnist").iterdir()) == []


def test_import_refuses_an_unrelated_file_naming_the_expected_ones(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("not a dataset file")
    with pytest.raises(UserError) as excinfo:
        import_files(DATASETS.get("mnist"), [BUILTIN_LABELS, other], tmp_path / "data")
    message = one_line(excinfo)
    assert str(other) in message
    assert all(f.name in message for f in DATASETS.get("mnist").files)
    assert not (tmp_path / "data" / "mnist" / LABELS).exists()  # all or nothing


def test_import_refuses_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        import_files(DATASETS.get("mnist"), [tmp_path / "nope.gz"], tmp_path / "data")
    with pytest.raises(UserError, match="no such file"):
        import_files(DATASETS.get("mnist"), [tmp_path], tmp_path / "data")  # a folder is not a file

