"""``archzoo data ...`` end to end through ``main([...])``, in-process, on the staged and built-in data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from archzoo.cli.main import main
from archzoo.data import DATASETS
from archzoo.data.sources import BUILTIN_DIR
from helpers import SHARED_DATA, needs_shared_data
from mirror_server import closed_port_url, serve

LABELS = "t10k-labels-idx1-ubyte.gz"


@pytest.fixture
def tmp_default_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the default write dir at tmp: a command failing later than expected must not touch the
    staged data (ARCHZOO_DATA), which root could write to despite its read-only modes."""
    monkeypatch.setenv("ARCHZOO_DATA", str(tmp_path / "default-data"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str) -> str:
    assert code != 0
    assert "Traceback" not in err and "internal error" not in err
    assert err.startswith("archzoo: error: ") and err.count("\n") == 1
    return err


@needs_shared_data
def test_list_shows_every_dataset_and_where_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    lines = {line.split("\t")[0]: line for line in out.splitlines()}
    assert set(lines) == set(DATASETS.names())
    assert f"present in {SHARED_DATA / 'mnist'}" in lines["mnist"]
    assert f"present in {BUILTIN_DIR / 'mnist-small'}" in lines["mnist-small"]


def test_list_reports_missing_files(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    code, out, _ = run(capsys, "data", "list")
    lines = {line.split("\t")[0]: line for line in out.splitlines()}
    assert code == 0 and lines["mnist"].endswith("missing 4 of 4 files")


@needs_shared_data
def test_info_prints_files_checksums_license(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "info", "mnist")
    assert code == 0
    assert "license: CC BY-SA 3.0" in out and "split test: 10,000 images" in out
    for f in DATASETS.get("mnist").files:
        assert f"sha256 {f.sha256}" in out
        assert str(SHARED_DATA / "mnist" / f.name) in out


@needs_shared_data
def test_verify_checks_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "data", "verify", "mnist")
    assert code == 0 and err == ""
    assert out.count("OK ") == 4 and str(SHARED_DATA / "mnist" / LABELS) in out


def test_verify_reports_a_corrupt_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "mnist-small"
    folder.mkdir()
    data = bytearray((BUILTIN_DIR / "mnist-small" / LABELS).read_bytes())
    data[300] ^= 0x10
    (folder / LABELS).write_bytes(bytes(data))
    code, out, err = run(capsys, "data", "verify", "mnist-small", "--data-dir", str(tmp_path))
    assert_one_line_error(code, err)
    assert "1 file(s)" in err
    assert f"BAD     {folder / LABELS}" in out and out.count("OK ") == 3


def test_verify_missing_dataset_fails(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    code, out, err = run(capsys, "data", "verify", "fashion-mnist")
    assert_one_line_error(code, err)
    assert out.count("MISSING fashion-mnist/") == 4


@needs_shared_data
@pytest.mark.parametrize("flag_after_action", [False, True])
def test_fetch_from_a_mirror(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                             flag_after_action: bool) -> None:
    monkeypatch.delenv("ARCHZOO_DATA")
    data_dir = tmp_path / "data"
    with serve(SHARED_DATA) as mirror:
        args = ["fetch", "mnist", "--mirror", mirror.url, "--no-progress"]
        argv = ["data", *args, "--data-dir", str(data_dir)] if flag_after_action else ["data", "--data-dir", str(data_dir), *args]
        code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    assert out.strip() == f"mnist: all files present and verified in {data_dir / 'mnist'}"
    for f in DATASETS.get("mnist").files:
        assert (data_dir / "mnist" / f.name).read_bytes() == (SHARED_DATA / "mnist" / f.name).read_bytes()
    code, out, _ = run(capsys, "data", "--data-dir", str(data_dir), "verify", "mnist")
    assert code == 0 and out.count(str(data_dir)) == 4


def test_fetch_from_an_unreachable_mirror(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    code, _, err = run(capsys, "data", "fetch", "mnist", "--mirror", closed_port_url(), "--data-dir", str(tmp_path),
                       "--no-progress")
    assert "cannot download" in assert_one_line_error(code, err)


def test_import_then_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path, tmp_default_data: None) -> None:
    source = tmp_path / "my-download.bin"
    shutil.copyfile(BUILTIN_DIR / "mnist-small" / LABELS, source)
    code, out, err = run(capsys, "data", "import", "mnist", str(source), "--data-dir", str(tmp_path / "d"))
    assert code == 0 and err == ""
    assert out.strip() == f"imported {tmp_path / 'd' / 'mnist' / LABELS}"
    assert (tmp_path / "d" / "mnist" / LABELS).read_bytes() == source.read_bytes()
    assert not (tmp_path / "default-data").exists()


def test_import_of_a_wrong_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, tmp_default_data: None) -> None:
    (tmp_path / "cat.jpg").write_bytes(b"\xff\xd8\xff not the digits you are looking for")
    code, _, err = run(capsys, "data", "import", "mnist", str(tmp_path / "cat.jpg"), "--data-dir", str(tmp_path / "d"))
    assert "expected one of: train-images-idx3-ubyte.gz" in assert_one_line_error(code, err)
    code, _, err = run(capsys, "data", "import", "mnist", str(tmp_path / "nothing.gz"), "--data-dir", str(tmp_path / "d"))
    assert "no such file" in assert_one_line_error(code, err)


@pytest.mark.parametrize("argv", [["data", "info", "mnsit"], ["data", "verify", "mnsit"], ["data", "fetch", "mnsit"],
                                  ["data", "import", "mnsit", "x.gz"]])
def test_unknown_dataset_names_close_matches(capsys: pytest.CaptureFixture[str], argv: list[str],
                                            tmp_default_data: None) -> None:
    code, _, err = run(capsys, *argv)
    assert "unknown dataset 'mnsit' (did you mean: mnist" in assert_one_line_error(code, err)


@pytest.mark.parametrize("argv", [["data"], ["data", "frobnicate"], ["data", "info"], ["data", "import", "mnist"],
                                  ["data", "fetch", "mnist", "--mirror", "127.0.0.1:8000"]])
def test_bad_usage_is_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], tmp_default_data: None) -> None:
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err)


def test_fetch_into_a_folder_that_cannot_be_written(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file can never hold a folder")
    code, _, err = run(capsys, "data", "fetch", "mnist", "--data-dir", str(blocker / "data"), "--no-progress",
                       "--mirror", closed_port_url())
    assert "cannot write to folder" in assert_one_line_error(code, err)


def test_fetch_into_a_read_only_folder(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    probe = read_only / "probe"
    try:
        probe.touch()  # root ignores permission bits: only then is the chmod case meaningful
        probe.unlink()
        pytest.skip("root ignores permission bits; test_fetch_into_a_folder_that_cannot_be_written covers this")
    except PermissionError:
        pass
    code, _, err = run(capsys, "data", "fetch", "mnist", "--data-dir", str(read_only), "--no-progress",
                       "--mirror", closed_port_url())
    assert "cannot write to folder" in assert_one_line_error(code, err)
    assert os.listdir(read_only) == []
