"""IDX reader (MNIST, Fashion-MNIST): gz or raw, vectorised with numpy.

Format (LeCun's MNIST page): a big-endian header ``0x00 0x00 <dtype> <ndim>`` followed by ``ndim``
big-endian uint32 dimension sizes, then the data row-major. Only the uint8 type (0x08) occurs
in these datasets, but the other IDX types are read too.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from archzoo.errors import UserError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_NDIM = 32


def read_idx_bytes(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX payload; any malformation raises a one-line UserError."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{name} is not an IDX file (bad magic {raw[:4].hex() or 'empty'}); "
                        "re-download it with `archzoo data fetch`")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UserError(f"{name}: truncated IDX header; re-download it with `archzoo data fetch`")
    if ndim > _MAX_NDIM:  # numpy arrays have at most 32 (numpy 1) or 64 (numpy 2) dimensions
        raise UserError(f"{name}: IDX header claims {ndim} dimensions (at most {_MAX_NDIM} supported); "
                        "the file is corrupt, re-download it with `archzoo data fetch`")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a corrupt header must not wrap around
    if len(raw) - header != expected:
        raise UserError(f"{name}: IDX payload is {len(raw) - header} bytes but its header {_brief(shape)} needs "
                        f"{expected}; the file is truncated or corrupt, re-download it with `archzoo data fetch`")
    try:
        array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    except ValueError:  # an empty payload whose other dimensions are too large to address
        raise UserError(f"{name}: IDX header {_brief(shape)} describes an impossible array; the file is corrupt, "
                        "re-download it with `archzoo data fetch`") from None
    return array.astype(dtype.newbyteorder("="))


def _brief(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 80 else text[:77] + "...)"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gunzipping it when it starts with the gzip magic."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise UserError(f"{path}: corrupt or truncated gzip ({e}); re-download it with `archzoo data fetch`") from None
    return read_idx_bytes(raw, str(path))
