"""Read one voxel file, whatever its format: .npy, .npz, .binvox, .mat, and gzip of any of them.

The format is told by the file's first bytes, not by its name: a `.npy` that is really a zip
archive (an .npz) is read as one, and a file that is none of them is refused by what it is.
Every reader returns `bool` arrays and turns anything unusable into a one-line `DataError` that
names the file; pickled objects are never loaded.
Axis convention: arrays are indexed [x, y, z] in the file's own axes (grids.py turns them).
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from voxgan.data.binvox import MAGIC as BINVOX_MAGIC
from voxgan.data.binvox import decode_binvox
from voxgan.data.validate import as_volumes, to_binary
from voxgan.errors import DataError

VOXEL_SUFFIXES = (".npy", ".npz", ".npy.gz", ".npz.gz", ".binvox", ".mat")
"""File names the folder loader reads (any case); the format itself is told by the contents."""
ONE_SHAPE_SUFFIXES = (".binvox", ".mat")
"""Formats that hold one grid per file, so that a source needs a folder of them."""
MAT_KEY = "instance"
SPLIT_KEYS = ("X_train", "X_test", "y_train", "y_test")
"""An .npz that carries its own split and labels, as ModelNet files are passed around: `X_train`
(required), `X_test`, and the class indices `y_train` / `y_test` of each side."""
GZIP_MAGIC = b"\x1f\x8b"
PICKLE_MAGIC = b"\x80"
MAGICS: dict[str, tuple[bytes, ...]] = {
    "npy": (b"\x93NUMPY",),
    "npz": (b"PK\x03\x04", b"PK\x05\x06"),
    "binvox": (BINVOX_MAGIC,),
    "mat": (b"MATLAB",),
}


def voxel_suffix(path: Path | str) -> str | None:
    """The voxel suffix `path`'s name ends with (".npy.gz" before ".npy"), or None."""
    name = Path(path).name.lower()
    return next((s for s in sorted(VOXEL_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)


@dataclass
class VoxelFile:
    """The shapes of one voxel file. Most files hold one set of shapes; an .npz with SPLIT_KEYS
    also holds its own test side and, when it has `y_*`, each shape's class index."""

    volumes: np.ndarray
    """(N, D, D, D) bool: every shape, or the training side of a split file."""
    fmt: str
    """"npy", "npz", "binvox" or "mat"."""
    test: np.ndarray | None = None
    labels: np.ndarray | None = None
    """(N,) int64 class index of each of `volumes`."""
    test_labels: np.ndarray | None = None
    split_keys: bool = False
    """The file names its arrays by SPLIT_KEYS (X_train, even alone)."""

    @property
    def has_own_split(self) -> bool:
        return self.test is not None

    @property
    def labelled(self) -> bool:
        return self.labels is not None


def read_volumes(path: Path | str) -> np.ndarray:
    """(N, D, D, D) bool from any supported voxel file (the training side of a split file)."""
    return read_voxel_file(path).volumes


def read_voxel_file(path: Path | str) -> VoxelFile:
    """The shapes of a voxel file, told by its first bytes, as bool arrays."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not raw:
        raise DataError(f"{path}: the file is empty (0 bytes)")
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    fmt = next((name for name, magics in MAGICS.items() if raw.startswith(magics)), None)
    if fmt is None:
        what = ", a Python pickle" if raw.startswith(PICKLE_MAGIC) else ""
        raise DataError(f"{path}: not a voxel file: its contents are not .npy, .npz, .binvox or .mat "
                        f"(it starts with {raw[:8]!r}{what})")
    if fmt == "binvox":
        return VoxelFile(decode_binvox(raw, path)[None], fmt)
    if fmt == "mat":
        return VoxelFile(read_mat(io.BytesIO(raw), path)[None], fmt)
    arrays = _load_arrays(raw, fmt, path)
    if "X_train" not in arrays:
        return VoxelFile(as_volumes(arrays["voxels"], path), fmt)
    return _split_file(arrays, path, fmt)


def _load_arrays(raw: bytes, fmt: str, path: Path) -> dict[str, np.ndarray]:
    """{"voxels": array} of .npy bytes or of an .npz with one array (or one named `voxels`); the
    SPLIT_KEYS arrays of a split .npz."""
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
        if fmt == "npy":
            return {"voxels": loaded}
        with loaded:
            keys = list(loaded.keys())
            if "X_train" in keys:
                return {key: loaded[key] for key in SPLIT_KEYS if key in keys}
            if len(keys) != 1 and "voxels" not in keys:
                raise DataError(f"{path}: expected one array (or one named 'voxels', or X_train with "
                                f"X_test / y_train / y_test), found {keys or 'none'}")
            return {"voxels": loaded["voxels" if "voxels" in keys else keys[0]]}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path}: holds Python objects, not a numeric voxel array") from None
        raise DataError(f"{path}: not a readable .{fmt} file ({exc})") from None
    except (OSError, EOFError, zlib.error, KeyError) as exc:
        raise DataError(f"{path}: not a readable .{fmt} file ({exc})") from None


def _split_file(arrays: dict[str, np.ndarray], path: Path, fmt: str) -> VoxelFile:
    """A VoxelFile from X_train (and X_test, y_train, y_test), checking that labels match shapes."""
    train = as_volumes(arrays["X_train"], f"{path}[X_train]")
    test = as_volumes(arrays["X_test"], f"{path}[X_test]") if "X_test" in arrays else None
    if test is not None and test.shape[1:] != train.shape[1:]:
        raise DataError(f"{path}: X_train grids are {train.shape[1]}^3 and X_test grids {test.shape[1]}^3")
    sides = [("train", train)] + ([("test", test)] if test is not None else [])
    present = [f"y_{side}" for side, _ in sides if f"y_{side}" in arrays]
    if present and len(present) != len(sides):
        missing = next(f"y_{side}" for side, _ in sides if f"y_{side}" not in arrays)
        raise DataError(f"{path}: has {', '.join(present)} but no {missing}; labels must cover every side")
    labels = {side: _labels(arrays[f"y_{side}"], len(volumes), f"{path}[y_{side}]")
              for side, volumes in sides if present}
    return VoxelFile(train, fmt, test, labels.get("train"), labels.get("test"), split_keys=True)


def _labels(array: np.ndarray, n: int, where: str) -> np.ndarray:
    """Class indices: one non-negative integer per shape."""
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != n:
        raise DataError(f"{where}: expected {n} class indices, one per shape, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
        raise DataError(f"{where}: class indices must be non-negative integers, got dtype {array.dtype}"
                        f"{f' and {array.min()}' if np.issubdtype(array.dtype, np.number) and len(array) else ''}")
    return array.astype(np.int64)


def read_mat(source: Path | str | io.BytesIO, path: Path | str | None = None) -> np.ndarray:
    """The D x D x D grid under the key `instance` of a MATLAB file (3D ShapeNets), as bool.
    `source` is the file or its bytes; `path` names it in errors (default: `source`)."""
    path = source if path is None else path
    try:
        contents = scipy.io.loadmat(source if isinstance(source, io.BytesIO) else str(source),
                                    variable_names=[MAT_KEY])
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError... for junk
        raise DataError(f"{path}: not a readable .mat file ({type(exc).__name__}: {exc})") from None
    if MAT_KEY not in contents:
        raise DataError(f"{path}: no variable '{MAT_KEY}' in the .mat file")
    array = contents[MAT_KEY]
    if array.ndim != 3 or len(set(array.shape)) != 1:
        raise DataError(f"{path}: expected a cubic D x D x D grid under '{MAT_KEY}', got shape {array.shape}")
    return to_binary(array, path)
