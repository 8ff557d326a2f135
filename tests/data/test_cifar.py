"""CIFAR-10 binary release: the record reader, the archive reader, the catalogue entry, fetch through a
mirror, and the classification task on a synthetic archive in the exact binary format."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from archzoo.cli.main import main
from archzoo.data.cifar import RECORD_BYTES, SPLIT_MEMBERS, read_cifar_archive, read_cifar_bytes
from archzoo.data.images import load_image_split
from archzoo.data.sources import DATASETS, FileSpec, fetch
from archzoo.errors import UserError
from archzoo.tasks.classification import ClassificationConfig, ImageClassification
from mirror_server import serve

ARCHIVE = "cifar-10-binary.tar.gz"


def records(labels: list[int], seed: int) -> tuple[bytes, np.ndarray]:
    """Batch-file bytes for ``labels`` with random pixels, and the images as (N, 3, 32, 32)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    raw = b"".join(bytes([label]) + img.tobytes() for label, img in zip(labels, images, strict=True))
    return raw, images


def write_archive(path: Path, per_batch: int = 6, test: int = 5, drop: str | None = None,
                  extra: dict[str, bytes] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A .tar.gz laid out like the real release (tiny batches); returns each split's images and labels."""
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    with tarfile.open(path, "w:gz") as archive:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\n")
        for split, members in SPLIT_MEMBERS.items():
            for i, member in enumerate(members):
                n = per_batch if split == "train" else test
                labels = [(i * 3 + j) % 10 for j in range(n)]
                raw, images = records(labels, seed=hash(member) % 1000)
                if member != drop:
                    add(member, raw)
                splits[split][0].append(images)
                splits[split][1].append(np.array(labels))
        for name, data in (extra or {}).items():
            add(name, data)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in splits.items()}


@pytest.fixture
def synthetic_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """A data dir holding a synthetic archive, and the catalogue entry pointed at its checksum."""
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    expected = write_archive(folder / ARCHIVE)
    data = (folder / ARCHIVE).read_bytes()
    spec = DATASETS.get("cifar10")
    fake = dataclasses.replace(spec, files=(FileSpec(ARCHIVE, hashlib.sha256(data).hexdigest(), len(data),
                                                     spec.files[0].url),))
    monkeypatch.setitem(DATASETS._entries, "cifar10", fake)
    return tmp_path / "data", expected


def test_records_are_label_then_red_green_blue_planes() -> None:
    raw = bytes([7]) + bytes(range(256)) * 12
    images, labels = read_cifar_bytes(raw)
    assert labels.tolist() == [7] and labels.dtype == np.int64
    assert images.shape == (1, 3, 32, 32) and images.dtype == np.uint8
    flat = np.frombuffer(raw[1:], dtype=np.uint8)
    assert np.array_equal(images[0, 0].ravel(), flat[:1024])  # red plane, row-major
    assert np.array_equal(images[0, 2].ravel(), flat[2048:])  # blue plane last
    assert images[0, 0, 1, 0] == flat[32]  # second row starts after 32 values


@pytest.mark.parametrize("size", [0, 1, RECORD_BYTES - 1, 2 * RECORD_BYTES + 5, 3072 * 10])
def test_a_size_that_is_not_whole_records_is_refused(size: int) -> None:
    with pytest.raises(UserError, match="not a whole number of CIFAR records of 3,073 bytes") as excinfo:
        read_cifar_bytes(bytes(size), "batch.bin")
    assert "\n" not in str(excinfo.value)


def test_labels_past_nine_are_refused() -> None:
    raw, _ = records([3, 12], seed=0)
    with pytest.raises(UserError, match="label 12 but CIFAR-10 labels are 0-9"):
        read_cifar_bytes(raw, "batch.bin")


def test_archive_reader_reads_both_splits_in_member_order(tmp_path: Path) -> None:
    expected = write_archive(tmp_path / ARCHIVE)
    for split in ("train", "test"):
        images, labels = read_cifar_archive(tmp_path / ARCHIVE, split)
        assert np.array_equal(images, expected[split][0]) and np.array_equal(labels, expected[split][1])
    assert len(read_cifar_archive(tmp_path / ARCHIVE, "train")[1]) == 5 * 6


def test_bad_archives_are_one_line_errors(tmp_path: Path) -> None:
    write_archive(tmp_path / "missing.tar.gz", drop="cifar-10-batches-bin/data_batch_3.bin")
    with pytest.raises(UserError, match="has no cifar-10-batches-bin/data_batch_3.bin"):
        read_cifar_archive(tmp_path / "missing.tar.gz", "train")
    read_cifar_archive(tmp_path / "missing.tar.gz", "test")  # the test split is still whole
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "text.tar.gz").write_bytes(b"hello")
    for name in ("junk.tar.gz", "text.tar.gz"):
        with pytest.raises(UserError, match="is not a readable CIFAR-10 archive") as excinfo:
            read_cifar_archive(tmp_path / name, "test")
        assert "\n" not in str(excinfo.value)
    # a test batch cut short inside a valid archive
    raw, _ = records([1, 2], seed=1)
    write_archive(tmp_path / "short.tar.gz", drop="cifar-10-batches-bin/test_batch.bin",
                  extra={"cifar-10-batches-bin/test_batch.bin": raw[:-100]})
    with pytest.raises(UserError, match="test_batch.bin is 6,046 bytes, not a whole number"):
        read_cifar_archive(tmp_path / "short.tar.gz", "test")


def test_catalogue_entry() -> None:
    spec = DATASETS.get("cifar10")
    (archive,) = spec.files
    assert archive.url == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert archive.size == 170_052_171 and len(archive.sha256) == 64
    assert archive.md5_alternatives == ("c32a1d4ab5d03f1284b67883e8d87530",)  # the dataset page's md5
    assert len(spec.meta["classes"]) == 10 and len(spec.meta["mean"]) == len(spec.meta["std"]) == 3


def test_fetch_through_a_mirror_then_load(synthetic_cifar: tuple[Path, dict], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    mirror_root, expected = synthetic_cifar
    monkeypatch.delenv("ARCHZOO_DATA", raising=False)
    with serve(mirror_root) as server:
        dest = fetch(DATASETS.get("cifar10"), tmp_path / "fetched", mirror=server.url, progress=False)
        assert [path for path, _ in server.requests] == [f"/cifar10/{ARCHIVE}"]
    assert (dest / ARCHIVE).read_bytes() == (mirror_root / "cifar10" / ARCHIVE).read_bytes()
    split = load_image_split("cifar10", "test", tmp_path / "fetched")
    assert split.images.shape == (5, 3, 32, 32) and split.images.dtype == torch.uint8
    assert torch.equal(split.labels, torch.from_numpy(expected["test"][1]))


def test_classification_task_normalises_per_channel_and_augments_reproducibly(
        synthetic_cifar: tuple[Path, dict]) -> None:
    data_dir, expected = synthetic_cifar
    cfg = ClassificationConfig(dataset="cifar10", val_size=6, augment="crop+flip+cutout", shift_pixels=4, cutout_size=8)
    task = ImageClassification(cfg, data_dir)
    assert task.model_args() == {"in_channels": 3, "image_size": 32, "num_classes": 10}
    x_test, _ = task.split("test")
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    torch.testing.assert_close(x_test, (torch.from_numpy(expected["test"][0]).float() / 255 - mean) / std)
    indices = torch.arange(8)
    a, _ = task.train_batch(indices, slice(None), seed=5)
    b, _ = task.train_batch(indices, slice(None), seed=5)
    c, _ = task.train_batch(indices, slice(None), seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # two ranks' halves are the two halves of the global batch
    halves = torch.cat([task.train_batch(indices, slice(0, 4), 5)[0], task.train_batch(indices, slice(4, 8), 5)[0]])
    assert torch.equal(halves, a)
    # the crop's padding is black in pixel space (per channel), and cutout holes are exactly zero
    black = (-mean / std).view(3)
    assert any(torch.isclose(a[i, ch], black[ch]).any() for i in range(8) for ch in range(3))
    assert (a == 0).all(dim=1).any()


def test_train_a_few_steps_on_synthetic_cifar_through_the_cli(synthetic_cifar: tuple[Path, dict], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = synthetic_cifar
    code = main(["train", "cifar10-resnet20", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"),
                 "--set", "data.val_size=6", "--set", "train.batch_size=8", "--set", "train.max_steps=2",
                 "--set", "train.eval_batch_size=8", "--set", "train.precision='fp32'", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "eval.json").is_file()


def test_user_photos_are_resized_whole_for_cifar(tmp_path: Path) -> None:
    from PIL import Image

    from archzoo.data.images import load_user_image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    pixels[:4] = 255  # a bright border would make the MNIST-style path invert the image
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    x = load_user_image(tmp_path / "photo.png", 3, 32, photo=True)
    expected = np.asarray(Image.fromarray(pixels).resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x, torch.from_numpy(expected).permute(2, 0, 1))
