"""CNN family through ``main([...])``: the layer table for every CNN, and bad input (wrong model arguments,
CIFAR-10 files of the wrong size or format) as one line on stderr, a non-zero exit and no traceback."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from archzoo.cli.main import main
from archzoo.data.sources import DATASETS, FileSpec

ARCHIVE = "cifar-10-binary.tar.gz"


def expect_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc not in (0, 1), f"exit code {rc} for {argv}: {err}"  # 1 is an internal error (a bug)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("archzoo: error: "), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("name", ["alexnet", "vgg11_bn", "googlenet", "resnet20", "plain20", "densenet_bc"])
def test_info_prints_a_layer_table(capsys: pytest.CaptureFixture[str], name: str) -> None:
    args = ["info", name] + (["--set", "depth=16"] if name == "densenet_bc" else [])
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == name and lines[1].split()[:2] == ["layer", "type"]
    assert any("Conv2d" in line for line in lines) and lines[-1].startswith("parameters: ")
    assert "forward FLOPs per example" in lines[-1]


@pytest.mark.parametrize("args,needles", [
    (["info", "densenet_bc", "--set", "depth=50"], ["depth must be 6n + 4"]),
    (["info", "alexnet", "--set", "image_size=8"], ["alexnet needs images of at least 15x15"]),
    (["info", "resnet20", "--set", "shortcut='C'"], ["shortcut must be one of A, B, none"]),
    (["train", "--model", "resnet20", "--dataset", "mnist-small", "--set", "data.augment='crop+rotate'",
      "--dry-run"], ["data.augment must be 'none' or some of"]),
])
def test_bad_model_and_augmentation_arguments(capsys: pytest.CaptureFixture[str], args: list[str],
                                              needles: list[str]) -> None:
    expect_error(capsys, args, *needles)


def test_a_cifar_archive_that_is_not_the_release_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    (folder / ARCHIVE).write_bytes(b"\x1f\x8b" + bytes(1000))
    expect_error(capsys, ["train", "cifar10-resnet20", "--data-dir", tmp_path / "data", "--dry-run"],
                 "checksum mismatch", ARCHIVE)
    expect_error(capsys, ["data", "import", "cifar10", folder / ARCHIVE, "--data-dir", tmp_path / "other"],
                 "is none of the files of dataset 'cifar10'")


def test_a_batch_of_the_wrong_size_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An archive with the catalogued checksum (patched here) whose third training batch is not whole records."""
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    with tarfile.open(folder / ARCHIVE, "w:gz") as archive:
        for name, size in [(f"cifar-10-batches-bin/data_batch_{i}.bin", 3073 * 2 - 7 * (i == 3)) for i in range(1, 6)] + [
                ("cifar-10-batches-bin/test_batch.bin", 3073)]:
            info = tarfile.TarInfo(name)
            info.size = size
            archive.addfile(info, io.BytesIO(bytes(size)))
    data = (folder / ARCHIVE).read_bytes()
    spec = DATASETS.get("cifar10")
    monkeypatch.setitem(DATASETS._entries, "cifar10", dataclasses.replace(
        spec, files=(FileSpec(ARCHIVE, hashlib.sha256(data).hexdigest(), len(data), spec.files[0].url),)))
    expect_error(capsys, ["train", "cifar10-resnet20", "--data-dir", tmp_path / "data", "--set", "data.val_size=0",
                          "--dry-run"],
                 "data_batch_3.bin is 6,139 bytes, not a whole number of CIFAR records of 3,073 bytes")
