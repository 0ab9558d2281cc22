"""`load_dataset`: one entry point from a `DataConfig` to train/test voxel arrays and the summary
that describes them, whatever the source (docs/data.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxgan.config import DataConfig
from voxgan.config.data_keys import FILES, PROCEDURAL, SHAPENETS, refuse_inert_keys
from voxgan.config.schema import SHAPENETS_ROTATIONS
from voxgan.data.discover import find_voxel_files
from voxgan.data.procedural import generate_shapes
from voxgan.data.grids import resample, to_z_up, up_axis_of
from voxgan.data.shapenet import GRID_FOLDER, is_shapenets_tree, load_shapenets
from voxgan.data.split import (
    extra_copies, leading_count, non_empty, seen_in, shape_ids, split_by_file, split_by_shape, test_count,
)
from voxgan.data.summary import MAX_ROWS, DataSummary, disjoint_note, group_table, occupancy
from voxgan.data.voxio import ONE_SHAPE_SUFFIXES, VOXEL_SUFFIXES, read_voxel_file, voxel_suffix
from voxgan.errors import DataError


@dataclass
class VoxelDataset:
    """Training and held-out shapes: C-contiguous bool arrays shaped (N, R, R, R), z up."""

    train: np.ndarray
    test: np.ndarray
    name: str
    summary: DataSummary | None = field(default=None, repr=False)
    """How the shapes were read, split and cleaned; a bare count for arrays given directly."""

    def __post_init__(self) -> None:
        self.train = np.ascontiguousarray(self.train, dtype=bool)
        self.test = np.ascontiguousarray(self.test, dtype=bool)
        for part in (self.train, self.test):
            if part.ndim != 4 or len(set(part.shape[1:])) != 1:
                raise ValueError(f"{self.name}: volumes must be (N, R, R, R), got {part.shape}")
        if self.train.shape[1:] != self.test.shape[1:]:
            raise ValueError(f"{self.name}: train {self.train.shape} and test {self.test.shape} differ in resolution")
        if self.summary is None:
            self.summary = DataSummary(self.name, self.resolution, len(self.train), len(self.test),
                                       occupancy(self.train), occupancy(self.test), "given as arrays")

    @property
    def resolution(self) -> int:
        return self.train.shape[1]


@dataclass
class Grouped:
    """Shapes with the index of the file (or folder) each came from, for the summary's table."""

    volumes: np.ndarray
    groups: np.ndarray

    def take(self, mask: np.ndarray) -> Grouped:
        """The shapes where `mask` is True (itself when all are: no copy of a large set)."""
        return self if mask.all() else Grouped(self.volumes[mask], self.groups[mask])


def load_dataset(cfg: DataConfig) -> VoxelDataset:
    """The shapes `cfg.source` names, at `cfg.resolution`, z up, split and cleaned by `cfg`.

    Sources: "procedural"; a 3D ShapeNets `volumetric_data` folder (its own train/test split);
    a voxel file of many shapes, or a folder of voxel files at any depth (a seeded random split
    per distinct shape, or per file with data.split=files). Empty shapes are dropped, and test
    shapes identical to a training shape. `fraction` keeps the leading share of the training
    shapes, at least one.
    """
    if cfg.source == PROCEDURAL:
        return _procedural(cfg)
    path = Path(cfg.source).expanduser()
    if not path.exists():
        raise DataError(f"{cfg.source}: no such file or folder")
    if path.is_dir() and is_shapenets_tree(path):
        refuse_inert_keys(cfg, {SHAPENETS}, DataError)
        return _shapenets(path, cfg)
    refuse_inside_shapenets_tree(path)
    refuse_inert_keys(cfg, {FILES}, DataError)
    if path.is_dir():
        found = find_voxel_files(path, cfg.pattern, cfg.max_files)
        return _voxel_files(found.files, path, cfg, found.ignored())
    if voxel_suffix(path) is None:
        raise DataError(f"{path}: unsupported file type (expected one of {', '.join(VOXEL_SUFFIXES)}, "
                        f"or a folder of them)")
    if voxel_suffix(path) in ONE_SHAPE_SUFFIXES:
        raise DataError(f"{path}: a {voxel_suffix(path)} file holds one shape and a train/test split needs at "
                        f"least 2; use the folder that holds the {voxel_suffix(path)} files as data.source")
    return _voxel_files([path], path.parent, cfg, "")


def refuse_inside_shapenets_tree(path: Path) -> None:
    """A folder inside a 3D ShapeNets tree (`chair`, `chair/30`, `chair/30/train`) would be read
    as loose files, losing the data set's own split and its rotations' grouping: point the user
    at the root."""
    if not path.is_dir():
        return
    for category in (path, path.parent, path.parent.parent):
        if (category / GRID_FOLDER).is_dir() and (path == category or path.is_relative_to(category / GRID_FOLDER)):
            raise DataError(f"{path}: this is inside the 3D ShapeNets category folder '{category.name}'; use "
                            f"its parent as data.source and data.category={category.name}")


def _procedural(cfg: DataConfig) -> VoxelDataset:
    shapes = generate_shapes(cfg.n_shapes, cfg.resolution, cfg.families, cfg.seed)
    n_test = test_count(len(shapes), cfg.test_fraction, PROCEDURAL)
    groups = np.arange(len(shapes)) % len(cfg.families)
    everything = Grouped(shapes, groups)
    is_test = np.arange(len(shapes)) >= len(shapes) - n_test
    name = f"procedural({','.join(cfg.families)}; seed {cfg.seed})"
    return finish(name, everything.take(~is_test), everything.take(is_test), cfg,
                  split=f"the last {n_test} of {len(shapes)} generated shapes (data.test_fraction "
                        f"{cfg.test_fraction}), families in turn",
                  labels=list(cfg.families), grids="", up="z (generated so)")


def _shapenets(root: Path, cfg: DataConfig) -> VoxelDataset:
    train, test = load_shapenets(root, cfg.category, cfg.resolution, cfg.cache_dir, cfg.rotations)
    up = up_axis_of("mat", cfg.up_axis)
    train, test = to_z_up(train, up), to_z_up(test, up)
    rotations = "all 12" if tuple(cfg.rotations) == SHAPENETS_ROTATIONS else ", ".join(map(str, cfg.rotations))
    return finish(f"3D ShapeNets {cfg.category} ({root}), rotations {rotations}",
                  Grouped(train, np.zeros(len(train), int)), Grouped(test, np.zeros(len(test), int)), cfg,
                  split="the data set's own train/ and test/ folders", labels=[cfg.category],
                  grids="30^3 .mat files", up=_up_text({"mat": up}, cfg.up_axis))


def _voxel_files(files: list[Path], root: Path, cfg: DataConfig, ignored: str) -> VoxelDataset:
    """Shapes of voxel files, split by shape (default) or by file, at random with data.seed."""
    labels = sorted({_label(file.relative_to(root), len(files)) for file in files})
    volumes, file_of, ups, sizes = [], [], {}, Counter()
    for index, file in enumerate(files):
        stored, fmt = read_voxel_file(file)
        ups[fmt] = up_axis_of(fmt, cfg.up_axis)
        sizes[stored.shape[1]] += len(stored)
        volumes.append(resample(to_z_up(stored, ups[fmt]), cfg.resolution))
        file_of.append(np.full(len(stored), index))
    file_index = np.concatenate(file_of)
    group_of_file = np.array([labels.index(_label(file.relative_to(root), len(files))) for file in files])
    everything = Grouped(np.concatenate(volumes), group_of_file[file_index])
    kept = non_empty(everything.volumes)
    everything, file_index = everything.take(kept), file_index[kept]
    source = root if len(files) > 1 else files[0]
    if cfg.split == "files":
        is_test = split_by_file(file_index, len(files), cfg.test_fraction, cfg.seed, source)
        split = f"whole files at random (data.split=files, seed {cfg.seed}, test_fraction {cfg.test_fraction})"
    else:
        is_test = split_by_shape(shape_ids(everything.volumes), cfg.test_fraction, cfg.seed, source)
        split = f"each distinct shape at random (seed {cfg.seed}, test_fraction {cfg.test_fraction})"
    grids = ", ".join(f"{size}^3 ({count} shapes)" for size, count in sorted(sizes.items()))
    return finish(_files_name(files, root), everything.take(~is_test), everything.take(is_test), cfg,
                  split=split, labels=labels, grids=grids, up=_up_text(ups, cfg.up_axis), ignored=ignored,
                  dropped_empty=int((~kept).sum()))


def _label(relative: Path, n_files: int) -> str:
    """A file's row in the summary: the file itself, or its top folder (a category, say) when
    there are too many files for a row each."""
    if n_files <= MAX_ROWS or len(relative.parts) == 1:
        return relative.as_posix()
    return relative.parts[0] + "/"


def _files_name(files: list[Path], root: Path) -> str:
    """'shapes (5 files: 3 .binvox, 2 .npy)', or the file's name for a one-file source."""
    if len(files) == 1:
        return files[0].name
    suffixes = Counter(voxel_suffix(file) for file in files)
    kinds = ", ".join(f"{n} {suffix}" for suffix, n in sorted(suffixes.items()))
    return f"{root.name} ({len(files)} files: {kinds})"


def _up_text(ups: dict[str, str], setting: str) -> str:
    """'.binvox: y, turned to z; .npy: z (data.up_axis=auto)' from the up axis applied per format."""
    turned = "; ".join(f".{fmt}: {up}" + ("" if up == "z" else ", turned to z") for fmt, up in sorted(ups.items()))
    return f"{turned} (data.up_axis={setting})"


def finish(name: str, train: Grouped, test: Grouped, cfg: DataConfig, *, split: str, labels: list[str],
           grids: str, up: str, ignored: str = "", dropped_empty: int = 0) -> VoxelDataset:
    """The dataset and its summary from a split: drops empty shapes and test shapes identical to a
    training shape, counts the copies kept within each side, keeps the leading training fraction."""
    train_kept, test_kept = non_empty(train.volumes), non_empty(test.volumes)
    dropped_empty += int((~train_kept).sum() + (~test_kept).sum())
    train, test = train.take(train_kept), test.take(test_kept)
    train_ids, test_ids = shape_ids(train.volumes), shape_ids(test.volumes)
    copy = seen_in(test_ids, train_ids)
    test, test_ids = test.take(~copy), test_ids[~copy]
    if not len(test.volumes) or not len(train.volumes):
        side = "test" if not len(test.volumes) else "training"
        raise DataError(f"{cfg.source}: no {side} shapes are left once empty shapes and test shapes identical "
                        f"to a training shape are dropped")
    leading = np.arange(len(train.volumes)) < leading_count(len(train.volumes), cfg.fraction)
    train, train_ids = train.take(leading), train_ids[leading]
    table = group_table(labels, train.groups, test.groups)
    summary = DataSummary(
        name, cfg.resolution, len(train.volumes), len(test.volumes), occupancy(train.volumes),
        occupancy(test.volumes), split + (f"; training shapes cut to the leading {cfg.fraction:g}"
                                          if cfg.fraction < 1 else ""),
        up=up, grids=grids, per_group=table if len(labels) > 1 else [], dropped_empty=dropped_empty,
        dropped_test_copies=int(copy.sum()), copies_train=extra_copies(train_ids), copies_test=extra_copies(test_ids),
        ignored=ignored, notes=disjoint_note(table, "files or folders"))
    return VoxelDataset(train.volumes, test.volumes, name, summary)
