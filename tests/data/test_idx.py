"""IDX reader (data/idx.py): real MNIST and Fashion-MNIST files, raw copies, and every malformation."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from archzoo.data.idx import read_idx, read_idx_bytes
from archzoo.errors import UserError
from helpers import SHARED_DATA, needs_shared_data

MNIST = SHARED_DATA / "mnist"
BUILTIN_LABELS = Path(__file__).resolve().parents[2] / "src/archzoo/data/builtin/mnist-small/t10k-labels-idx1-ubyte.gz"
# Per-class counts of the MNIST test set (LeCun et al.), a fixed property of the real file.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def assert_one_line_user_error(excinfo: pytest.ExceptionInfo[UserError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


@needs_shared_data
def test_reads_real_mnist_test_split() -> None:
    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert images.min() == 0 and images.max() == 255
    assert images[0, 0].sum() == 0  # MNIST digits sit inside a blank border
    assert 30 < images.mean() < 36  # mean 0.1325 * 255 on the test set


@needs_shared_data
def test_reads_real_fashion_mnist_labels_balanced() -> None:
    labels = read_idx(SHARED_DATA / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz")
    assert np.bincount(labels).tolist() == [1000] * 10


def test_builtin_labels_equal_the_staged_ones() -> None:
    labels = read_idx(BUILTIN_LABELS)
    assert np.bincount(labels, minlength=10).tolist() == MNIST_TEST_COUNTS


def test_raw_file_reads_equal_to_gz(tmp_path: Path) -> None:
    raw = gzip.decompress(BUILTIN_LABELS.read_bytes())
    (tmp_path / "labels-idx1-ubyte").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels-idx1-ubyte"), read_idx(BUILTIN_LABELS))
    np.testing.assert_array_equal(read_idx_bytes(raw), read_idx(BUILTIN_LABELS))


@pytest.mark.parametrize(("code", "dtype"), [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                             (0x0D, np.float32), (0x0E, np.float64)])
def test_every_idx_type_round_trips_big_endian(code: int, dtype: type) -> None:
    array = (np.arange(-12, 12).reshape(2, 3, 4) * 3).astype(dtype)
    out = read_idx_bytes(idx_bytes(array, code))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


VALID = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08)


@pytest.mark.parametrize(("raw", "needle"), [
    (b"", "not an IDX file"),
    (b"\x00\x00", "not an IDX file"),
    (b"PK\x03\x04" + VALID[4:], "bad magic 504b0304"),
    (b"\x00\x00\x07\x03" + VALID[4:], "not an IDX file"),  # unknown type code
    (b"\x00\x00\x08\x00", "truncated IDX header"),  # zero dimensions
    (VALID[:9], "truncated IDX header"),
    (VALID[:-1], "payload is 23 bytes"),
    (VALID + b"\x00", "payload is 25 bytes"),
    (VALID[:16], "truncated or corrupt"),
    # a header whose dimensions multiply past 2**64 must not wrap around to "0 bytes needed"
    (b"\x00\x00\x08\x03" + struct.pack(">III", 2**31, 2**31, 4), "truncated or corrupt"),
    # zero items, but the other dimensions are too large for numpy to address
    (b"\x00\x00\x08\x03" + struct.pack(">III", 0, 2**32 - 1, 2**32 - 1), "impossible array"),
    (b"\x00\x00\x08\x64" + b"\x00\x00\x00\x01" * 100 + b"\x07", "100 dimensions"),
])
def test_malformed_idx_bytes_raise_one_line_user_error(raw: bytes, needle: str) -> None:
    with pytest.raises(UserError) as excinfo:
        read_idx_bytes(raw, "x.idx")
    message = assert_one_line_user_error(excinfo)
    assert needle in message and "x.idx" in message


@pytest.mark.parametrize("case", ["bad-magic", "truncated-header", "truncated-payload", "short-gzip", "corrupt-gzip",
                                  "gzip-of-garbage", "empty", "missing", "directory"])
def test_malformed_files_raise_one_line_user_error(tmp_path: Path, case: str) -> None:
    gz = BUILTIN_LABELS.read_bytes()
    raw = gzip.decompress(gz)
    corrupt = bytearray(gz)
    corrupt[len(gz) // 2] ^= 0xFF
    contents = {
        "bad-magic": b"\x89PNG" + raw[4:],
        "truncated-header": raw[:6],
        "truncated-payload": raw[:5000],
        "short-gzip": gz[:100],
        "corrupt-gzip": bytes(corrupt),
        "gzip-of-garbage": gzip.compress(b"hello world"),
        "empty": b"",
    }
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    if case in contents:
        path.write_bytes(contents[case])
    elif case == "directory":
        path.mkdir()
    with pytest.raises(UserError) as excinfo:
        read_idx(path)
    assert str(path) in assert_one_line_user_error(excinfo)


def test_truncated_real_gzip_at_many_points_is_always_a_user_error(tmp_path: Path) -> None:
    gz = BUILTIN_LABELS.read_bytes()
    path = tmp_path / "cut.gz"
    for cut in (2, 3, 10, 11, 40, len(gz) // 3, len(gz) - 9, len(gz) - 1):
        path.write_bytes(gz[:cut])
        with pytest.raises(UserError):
            read_idx(path)
