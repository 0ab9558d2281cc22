"""The .binvox format (Patrick Min's voxeliser, ShapeNetCore's voxelisations): read and write.

A file is a text header (`#binvox 1`, `dim D D D`, `translate`, `scale`, `data`) followed by
run-length (value, count) byte pairs with y running fastest, then z, then x (the binvox spec).
Arrays here are indexed [x, y, z] in the file's own axes; which of them is up is not the
format's business (see grids.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxgan.data.validate import to_binary
from voxgan.errors import DataError

MAGIC = b"#binvox"


def read_binvox(path: Path | str) -> np.ndarray:
    """The D x D x D grid of a .binvox file as bool, indexed [x, y, z]."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return decode_binvox(raw, path)


def decode_binvox(raw: bytes, path: Path | str) -> np.ndarray:
    """The grid of binvox bytes `raw` (from `path`, named in errors) as bool [x, y, z]: the decoded
    [x, z, y] run order is transposed, no axis is turned."""
    if not raw.startswith(MAGIC):
        raise DataError(f"{path}: not a binvox file (no '#binvox' header)")
    dims, offset, ended = None, 0, False
    for _ in range(16):
        end = raw.find(b"\n", offset)
        if end < 0:
            break
        line, offset = raw[offset:end].strip(), end + 1
        if line.startswith(b"dim"):
            dims = tuple(int(d) for d in line.split()[1:] if d.isdigit())
        elif line == b"data":
            ended = True
            break
    if not ended:
        cut = " (the file is cut short)" if raw.find(b"\n", offset) < 0 else ""
        raise DataError(f"{path}: binvox header has no 'data' line{cut}")
    if dims is None:
        raise DataError(f"{path}: binvox header has no 'dim D D D' line")
    if len(dims) != 3 or len(set(dims)) != 1 or dims[0] < 2:
        raise DataError(f"{path}: binvox header needs a cubic 'dim D D D' line, got dim {' '.join(map(str, dims))}")
    pairs = np.frombuffer(raw, np.uint8, offset=offset)
    if pairs.size % 2:
        raise DataError(f"{path}: binvox data is not a sequence of (value, count) pairs")
    values = np.repeat(pairs[0::2], pairs[1::2])
    if values.size != np.prod(dims):
        cut = ", the file is cut short" if values.size < np.prod(dims) else ""
        raise DataError(f"{path}: binvox data holds {values.size} voxels where the header's dim "
                        f"{' '.join(map(str, dims))} needs {np.prod(dims)}{cut}")
    return to_binary(values, path).reshape(dims).transpose(0, 2, 1).copy()


def write_binvox(path: Path | str, volume: np.ndarray, translate=(0.0, 0.0, 0.0), scale: float = 1.0) -> None:
    """Write a D x D x D [x, y, z] grid as .binvox (the inverse of `read_binvox`)."""
    volume = np.asarray(volume, dtype=bool)
    size = volume.shape[0]
    flat = volume.transpose(0, 2, 1).reshape(-1).astype(np.uint8)
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    lengths = np.diff(np.r_[starts, flat.size])
    pieces = -(-lengths // 255)  # runs longer than 255 voxels are split into several pairs
    values = np.repeat(flat[starts], pieces)
    counts = np.full(values.size, 255, dtype=np.int64)
    last = np.cumsum(pieces) - 1
    counts[last] = lengths - 255 * (pieces - 1)
    header = (f"#binvox 1\ndim {size} {size} {size}\ntranslate {' '.join(map(str, translate))}\n"
              f"scale {scale}\ndata\n").encode()
    Path(path).write_bytes(header + np.stack([values, counts], axis=1).astype(np.uint8).tobytes())
