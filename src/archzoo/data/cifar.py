"""CIFAR-10 binary release: fixed-size records read straight out of the verified .tar.gz, vectorised with numpy.

Format (the dataset page, "Binary version"): each batch file holds records of 1 label byte (0-9) then
3,072 pixel bytes — the 1,024 red values of a 32x32 image row-major, then green, then blue; 10,000
records per file. ``data_batch_1.bin`` .. ``data_batch_5.bin`` are the training set, ``test_batch.bin``
the test set, all inside ``cifar-10-batches-bin/`` of ``cifar-10-binary.tar.gz``. Members are read from
the archive without extracting anything (so no path in it can write outside it), and nothing is unpickled.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np

from archzoo.errors import UserError

SIDE, CHANNELS = 32, 3
RECORD_BYTES = 1 + CHANNELS * SIDE * SIDE  # 3,073
FOLDER = "cifar-10-batches-bin"
SPLIT_MEMBERS = {
    "train": tuple(f"{FOLDER}/data_batch_{i}.bin" for i in range(1, 6)),
    "test": (f"{FOLDER}/test_batch.bin",),
}


def read_cifar_bytes(raw: bytes, name: str = "<bytes>", num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Parse one batch file: images uint8 (N, 3, 32, 32) and labels int64 (N,); malformed input raises one line."""
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise UserError(f"{name} is {len(raw):,} bytes, not a whole number of CIFAR records of {RECORD_BYTES:,} bytes "
                        "(1 label + 3,072 pixels); it is truncated or not a CIFAR-10 binary batch: re-fetch the dataset")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= num_classes:
        raise UserError(f"{name} has label {int(labels.max())} but CIFAR-10 labels are 0-{num_classes - 1}; "
                        "it is not a CIFAR-10 binary batch (CIFAR-100's files have two label bytes)")
    images = records[:, 1:].reshape(-1, CHANNELS, SIDE, SIDE).copy()
    return images, labels


def read_cifar_archive(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images (N, 3, 32, 32) uint8 and labels (N,) of ``split`` (train or test), read from the .tar.gz."""
    if split not in SPLIT_MEMBERS:
        raise UserError(f"unknown split {split!r} for CIFAR-10; choose train or test")
    wanted = SPLIT_MEMBERS[split]
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    handle = archive.extractfile(member)
                    assert handle is not None
                    found[member.name] = handle.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        reason = " ".join(str(e).split())[:80]  # tarfile's messages can span lines
        raise UserError(f"{path} is not a readable CIFAR-10 archive ({type(e).__name__}: {reason}); "
                        "delete it and run `archzoo data fetch cifar10`") from None
    missing = [m for m in wanted if m not in found]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)}; it is not the CIFAR-10 binary release "
                        "(cifar-10-binary.tar.gz): delete it and run `archzoo data fetch cifar10`")
    parts = [read_cifar_bytes(found[m], f"{path}:{m}") for m in wanted]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
