"""Train/test splits for sources that have none of their own, and the training fraction.

By default each distinct shape goes to one side at random, seeded by `data.seed`: a folder of
chairs and monitors then has both in train and test, whatever the file names. Copies of a shape
follow it, so no test shape is also a training shape. `data.split=files` holds out whole files
at random instead, for files whose shapes belong together (one model's rotations or parts).
"""

from __future__ import annotations

import numpy as np

from voxgan.errors import DataError

def split_by_shape(ids: np.ndarray, test_fraction: float, seed: int, source: object) -> np.ndarray:
    """(N,) bool, True for test: a seeded random share of the distinct `ids`, with all their copies."""
    distinct = np.unique(ids)
    n_test = test_count(len(distinct), test_fraction, source, "distinct shapes")
    chosen = np.random.default_rng(seed % 2**64).permutation(distinct)[:n_test]
    return np.isin(ids, chosen)


def split_by_file(file_index: np.ndarray, n_files: int, test_fraction: float, seed: int, source: object) -> np.ndarray:
    """(N,) bool, True for test: the shapes of a seeded random share of the files."""
    n_test = test_count(n_files, test_fraction, source, "files (data.split=files)")
    chosen = np.random.default_rng(seed % 2**64).permutation(n_files)[:n_test]
    return np.isin(file_index, chosen)


def test_count(n: int, test_fraction: float, source: object, what: str = "shapes") -> int:
    """round(n * test_fraction) held-out items, but at least one and never all."""
    if n < 2:
        raise DataError(f"{source}: {n} {what}; at least 2 are needed to split train/test")
    return min(max(round(n * test_fraction), 1), n - 1)


def leading_count(n: int, fraction: float) -> int:
    """How many of n training shapes the leading `fraction` keeps (the tutorial's obj_ratio): at least one."""
    return min(n, max(1, int(n * fraction + 1e-9)))
