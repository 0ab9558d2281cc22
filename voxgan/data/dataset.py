"""`load_dataset`: one entry point from a `DataConfig` to train/test voxel arrays, whatever the source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

from voxgan.config import PROCEDURAL, DataConfig
from voxgan.data.procedural import generate_shapes
from voxgan.data.shapenet import GRID_FOLDER, is_shapenets_tree, load_shapenets
from voxgan.data.voxio import VOXEL_SUFFIXES, read_volumes, resample
from voxgan.errors import DataError

T = TypeVar("T")


@dataclass
class VoxelDataset:
    """Training and held-out shapes: C-contiguous bool arrays shaped (N, R, R, R)."""

    train: np.ndarray
    test: np.ndarray
    name: str

    def __post_init__(self) -> None:
        self.train = np.ascontiguousarray(self.train, dtype=bool)
        self.test = np.ascontiguousarray(self.test, dtype=bool)
        for part in (self.train, self.test):
            if part.ndim != 4 or len(set(part.shape[1:])) != 1:
                raise ValueError(f"{self.name}: volumes must be (N, R, R, R), got {part.shape}")
        if self.train.shape[1:] != self.test.shape[1:]:
            raise ValueError(f"{self.name}: train {self.train.shape} and test {self.test.shape} differ in resolution")

    @property
    def resolution(self) -> int:
        return self.train.shape[1]


def load_dataset(cfg: DataConfig) -> VoxelDataset:
    """The shapes `cfg.source` names, at `cfg.resolution`, split and trimmed by `cfg`.

    Sources: "procedural"; a 3D ShapeNets `volumetric_data` folder (its own train/test split);
    a .npy/.npz/.binvox/.mat file (items split by a permutation seeded with `cfg.seed`); a folder
    of such files (the last `test_fraction` of the sorted files is the test split).
    `fraction` keeps the leading share of the training shapes, at least one.
    """
    if cfg.source == PROCEDURAL:
        return _procedural(cfg)
    path = Path(cfg.source).expanduser()
    if not path.exists():
        raise DataError(f"{cfg.source}: no such file or folder")
    if path.is_dir():
        if is_shapenets_tree(path):
            train, test = load_shapenets(path, cfg.category, cfg.resolution, cfg.cache_dir)
            return VoxelDataset(keep_leading(train, cfg.fraction), test, f"3dshapenets/{cfg.category}")
        if (path / GRID_FOLDER).is_dir():
            raise DataError(f"{path}: this is one category folder; use its parent as data.source "
                            f"and data.category={path.name}")
        return _voxel_folder(path, cfg)
    return _voxel_file(path, cfg)


def _procedural(cfg: DataConfig) -> VoxelDataset:
    shapes = generate_shapes(cfg.n_shapes, cfg.resolution, cfg.families, cfg.seed)
    n_test = test_count(len(shapes), cfg.test_fraction, PROCEDURAL)
    train, test = shapes[:-n_test], shapes[-n_test:]
    name = f"procedural({','.join(cfg.families)}; seed {cfg.seed})"
    return VoxelDataset(keep_leading(train, cfg.fraction), test, name)


def _voxel_file(path: Path, cfg: DataConfig) -> VoxelDataset:
    """One file of many shapes: a seeded permutation decides which items are held out."""
    volumes = resample(read_volumes(path), cfg.resolution)
    n_test = test_count(len(volumes), cfg.test_fraction, path)
    order = np.random.default_rng(cfg.seed % 2**64).permutation(len(volumes))
    train, test = volumes[np.sort(order[:-n_test])], volumes[np.sort(order[-n_test:])]
    return VoxelDataset(keep_leading(train, cfg.fraction), test, path.name)


def _voxel_folder(path: Path, cfg: DataConfig) -> VoxelDataset:
    """A folder of voxel files: whole files are held out, so that shapes stored together (one
    model's rotations, say) never straddle the split. A folder of one file splits its items."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VOXEL_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no {'/'.join(VOXEL_SUFFIXES)} files and no 3D ShapeNets category folders")
    if len(files) == 1:
        return _voxel_file(files[0], cfg)
    n_test = test_count(len(files), cfg.test_fraction, path)
    train_files = keep_leading(files[:-n_test], cfg.fraction)

    def read(group: list[Path]) -> np.ndarray:
        return np.concatenate([resample(read_volumes(file), cfg.resolution) for file in group])

    return VoxelDataset(read(train_files), read(files[-n_test:]), path.name)


def test_count(n: int, test_fraction: float, source: object) -> int:
    """round(n * test_fraction) held-out items, but at least one and never all."""
    if n < 2:
        raise DataError(f"{source}: {n} shape(s) or file(s); at least 2 are needed to split train/test")
    return min(max(round(n * test_fraction), 1), n - 1)


def keep_leading(items: Sequence[T], fraction: float) -> Sequence[T]:
    """The leading `fraction` of `items` (the tutorial's obj_ratio), at least one; a copy when
    trimmed, so the dropped shapes do not stay in memory behind a view."""
    keep = max(1, int(len(items) * fraction + 1e-9))
    if keep >= len(items):
        return items
    kept = items[:keep]
    return kept.copy() if isinstance(kept, np.ndarray) else kept
