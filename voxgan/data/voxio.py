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


def read_volumes(path: Path | str) -> np.ndarray:
    """(N, D, D, D) bool from any supported voxel file."""
    return read_voxel_file(path)[0]


def read_voxel_file(path: Path | str) -> tuple[np.ndarray, str]:
    """(N, D, D, D) bool from a voxel file, and its format ("npy", "npz", "binvox" or "mat")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
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
        return decode_binvox(raw, path)[None], fmt
    if fmt == "mat":
        return read_mat(io.BytesIO(raw), path)[None], fmt
    return as_volumes(_load_array(raw, fmt, path), path), fmt


def _load_array(raw: bytes, fmt: str, path: Path) -> np.ndarray:
    """The array of .npy bytes, or the one array (or the one named `voxels`) of .npz bytes."""
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
        if fmt == "npy":
            return loaded
        with loaded:
            keys = list(loaded.keys())
            if len(keys) != 1 and "voxels" not in keys:
                raise DataError(f"{path}: expected one array (or one named 'voxels'), found {keys or 'none'}")
            return loaded["voxels" if "voxels" in keys else keys[0]]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path}: holds Python objects, not a numeric voxel array") from None
        raise DataError(f"{path}: not a readable .{fmt} file ({exc})") from None
    except (OSError, EOFError, zlib.error, KeyError) as exc:
        raise DataError(f"{path}: not a readable .{fmt} file ({exc})") from None


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
