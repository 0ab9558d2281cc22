"""Checks that turn arrays from users' files into clean (N, D, D, D) bool occupancy, or refuse them
with one line that names the file, the problem and, where the data hints at it, the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxgan.errors import DataError


def to_binary(array: np.ndarray, path: Path | str) -> np.ndarray:
    """`array` as bool, refusing dtypes and values that are not a clean 0/1 occupancy."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"{path}: voxel values must be bool, integer or float, got dtype {array.dtype}")
    bad = (array != 0) & (array != 1)
    if bad.any():
        raise DataError(f"{path}: voxel values must be 0 or 1, found {array[bad].flat[0].item()}{_hint(array, bad)}")
    return array != 0


def _hint(array: np.ndarray, bad: np.ndarray) -> str:
    """What the values look like, when they look like something common."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        return ""
    low, high = array.min().item(), array.max().item()
    if high == 255 and low == 0 and not ((array != 0) & (array != 255)).any():
        return "; the values are 0 and 255, an 8-bit mask: save (array > 0) to use it"
    if low >= 0 and high <= 1:
        return "; the values lie between 0 and 1 (soft occupancy?): save a thresholded array such as (array > 0.5)"
    if low >= 0:
        return f"; the values run from {low} to {high}: if every non-zero voxel is occupied, save (array > 0)"
    return ""


def as_volumes(array: np.ndarray, path: Path | str) -> np.ndarray:
    """(N, D, D, D) bool from an N x D^3, N x 1 x D^3 or single D^3 array."""
    shape = tuple(array.shape)
    if array.size == 0:
        raise DataError(f"{path}: holds no shapes (an empty array of shape {shape})")
    if array.ndim == 5 and shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or len(set(array.shape[1:])) != 1 or array.shape[1] < 2:
        raise DataError(f"{path}: expected cubic voxel grids shaped N x D x D x D, N x 1 x D x D x D "
                        f"or D x D x D, got shape {shape}")
    return np.ascontiguousarray(to_binary(array, path))
