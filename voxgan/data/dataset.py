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
from voxgan.data.grids import is_whole_factor, resample, to_z_up, up_axis_of
from voxgan.data.shapenet import GRID_FOLDER, is_shapenets_tree, load_shapenets
from voxgan.data.split import (
    extra_copies, leading_count, non_empty, seen_in, shape_ids, split_by_file, split_by_shape, test_count,
)
from voxgan.data.summary import MAX_ROWS, DataSummary, disjoint_note, group_table, occupancy
from voxgan.data.voxio import ONE_SHAPE_SUFFIXES, VOXEL_SUFFIXES, VoxelFile, read_voxel_file, voxel_suffix
from voxgan.errors import DataError


@dataclass
class VoxelDataset:
    """Training and held-out shapes: C-contiguous bool arrays shaped (N, R, R, R), z up."""

    train: np.ndarray
    test: np.ndarray
    name: str
    summary: DataSummary | None = field(default=None, repr=False)
    """How the shapes were read, split and cleaned; a bare count for arrays given directly."""
    train_labels: np.ndarray | None = field(default=None, repr=False)
    """(N,) class index of each training shape, for labelled sources; else None."""
    test_labels: np.ndarray | None = field(default=None, repr=False)
    class_names: list[str] = field(default_factory=list)
    """The name of each class index of a labelled source."""

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

    @property
    def labelled(self) -> bool:
        return self.train_labels is not None


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
    if cfg.pattern != "*":
        raise DataError(f"data.pattern={cfg.pattern} chooses files of a folder and {path} is one file; remove it")
    file = read_voxel_file(path)
    if file.split_keys:
        return _split_file(path, file, cfg)
    return _voxel_files([path], path.parent, cfg, "", {path: file})


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


def _voxel_files(files: list[Path], root: Path, cfg: DataConfig, ignored: str,
                 read: dict[Path, VoxelFile] | None = None) -> VoxelDataset:
    """Shapes of voxel files, split by shape (default) or by file, at random with data.seed.

    The split is drawn over the shapes as stored, before they are turned and resampled, so that
    a source has the same test shapes at every resolution and up axis."""
    if cfg.classes is not None or cfg.class_names is not None:
        raise DataError(f"{root if len(files) > 1 else files[0]}: has no class labels (an .npz with y_train / "
                        f"y_test has them); remove data.classes and data.class_names")
    labels = sorted({_label(file.relative_to(root), len(files)) for file in files})
    volumes, file_of, ids, ups, sizes = [], [], [], {}, Counter()
    for index, path in enumerate(files):
        file = (read or {}).get(path) or read_voxel_file(path)
        if file.split_keys:
            raise DataError(f"{path}: holds its own train/test split or labels (X_train ...); use it alone as "
                            f"data.source")
        ups[file.fmt] = up_axis_of(file.fmt, cfg.up_axis)
        sizes[file.volumes.shape[1]] += len(file.volumes)
        ids.append(shape_ids(file.volumes))
        volumes.append(resample(to_z_up(file.volumes, ups[file.fmt]), cfg.resolution))
        file_of.append(np.full(len(file.volumes), index))
    file_index, ids = np.concatenate(file_of), np.concatenate(ids)
    group_of_file = np.array([labels.index(_label(file.relative_to(root), len(files))) for file in files])
    everything = Grouped(np.concatenate(volumes), group_of_file[file_index])
    source = root if len(files) > 1 else files[0]
    kept = non_empty(everything.volumes)
    refuse_all_empty(kept, source)
    everything, file_index, ids = everything.take(kept), file_index[kept], ids[kept]
    if cfg.split == "files":
        is_test = split_by_file(file_index, len(files), cfg.test_fraction, cfg.seed, source)
        split = f"whole files at random (data.split=files, seed {cfg.seed}, test_fraction {cfg.test_fraction})"
    else:
        is_test = split_by_shape(ids, cfg.test_fraction, cfg.seed, source)
        split = (f"each distinct shape at random (seed {cfg.seed}, test_fraction {cfg.test_fraction}), "
                 f"drawn over the grids as stored")
    return finish(_files_name(files, root), everything.take(~is_test), everything.take(is_test), cfg,
                  split=split, labels=labels, grids=_grids_text(sizes), up=_up_text(ups, cfg.up_axis),
                  ignored=ignored, dropped_empty=int((~kept).sum()), notes=_resample_notes(sizes, cfg.resolution))


def _split_file(path: Path, file: VoxelFile, cfg: DataConfig) -> VoxelDataset:
    """An .npz with its own split (X_train / X_test) and, when labelled, each shape's class: the
    file's split is kept, `data.classes` chooses classes, the hygiene is the same as elsewhere."""
    split = labelled_split(path, file, cfg)
    train, test = Grouped(split.train, split.train_labels), Grouped(split.test, split.test_labels)
    if file.has_own_split:
        if cfg.split == "files" or cfg.test_fraction != DataConfig.model_fields["test_fraction"].default:
            raise DataError(f"{path}: the file holds its own train/test split (X_train / X_test); remove "
                            f"data.split and data.test_fraction")
        how = "the file's own X_train / X_test"
        dropped = 0
    else:
        kept = non_empty(train.volumes)
        refuse_all_empty(kept, path)
        train, ids, dropped = train.take(kept), split.train_ids[kept], int((~kept).sum())
        is_test = split_by_shape(ids, cfg.test_fraction, cfg.seed, path)
        train, test = train.take(~is_test), train.take(is_test)
        how = (f"X_train alone: each distinct shape at random (seed {cfg.seed}, test_fraction "
               f"{cfg.test_fraction}), drawn over the grids as stored")
    if split.classes_chosen:
        how += f"; classes {', '.join(split.class_names[c] for c in split.classes_chosen)} only (data.classes)"
    if not file.labelled:
        split.class_names = []
    return finish(path.name, train, test, cfg, split=how, labels=split.class_names or ["all"],
                  grids=_grids_text(split.sizes), up=_up_text({file.fmt: split.up}, cfg.up_axis),
                  dropped_empty=dropped, notes=_resample_notes(split.sizes, cfg.resolution), labelled=file.labelled)


@dataclass
class LabelledSplit:
    """A split file's two sides as the networks see them (z up, at the resolution), with class
    indices (all 0 for an unlabelled file), before any hygiene: what the probe uses as it is."""

    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    classes_chosen: list[int]
    train_ids: np.ndarray
    """Ids of the training shapes as stored (resolution-independent)."""
    test_ids: np.ndarray
    up: str
    sizes: Counter

    def test_seen_in_train(self) -> int:
        """Non-empty test shapes identical to a training shape (as stored): what generation
        metrics drop and the probe, keeping the file's split as it is, reports."""
        return int((seen_in(self.test_ids, self.train_ids) & non_empty(self.test)).sum())


def labelled_split(path: Path, file: VoxelFile, cfg: DataConfig) -> LabelledSplit:
    """`file`'s sides turned, resampled and cut to `cfg.classes`, with their class names."""
    n_train = len(file.volumes)
    train_labels = file.labels if file.labels is not None else np.zeros(n_train, np.int64)
    test = file.test if file.test is not None else file.volumes[:0]
    test_labels = file.test_labels if file.test_labels is not None else np.zeros(len(test), np.int64)
    n_classes = int(max(train_labels.max(initial=0), test_labels.max(initial=0))) + 1
    if (cfg.classes or cfg.class_names) and not file.labelled:
        raise DataError(f"{path}: has no class labels (y_train / y_test); remove data.classes and data.class_names")
    names = class_names(cfg.class_names, n_classes, path)
    chosen = cfg.classes or []
    unknown = [c for c in chosen if not ((train_labels == c).any() or (test_labels == c).any())]
    if unknown:
        raise DataError(f"{path}: data.classes names class {unknown[0]}, which no shape has (classes 0 to "
                        f"{n_classes - 1})")
    keep_train = np.isin(train_labels, chosen) if chosen else np.ones(n_train, bool)
    keep_test = np.isin(test_labels, chosen) if chosen else np.ones(len(test), bool)
    up = up_axis_of(file.fmt, cfg.up_axis)
    sizes = Counter({file.volumes.shape[1]: int(keep_train.sum() + keep_test.sum())})
    return LabelledSplit(
        resample(to_z_up(file.volumes[keep_train], up), cfg.resolution), train_labels[keep_train],
        resample(to_z_up(test[keep_test], up), cfg.resolution), test_labels[keep_test], names, chosen,
        shape_ids(file.volumes[keep_train]), shape_ids(test[keep_test]), up, sizes)


def class_names(given: list[str] | None, n_classes: int, path: Path) -> list[str]:
    """The name of each class index: `given` (data.class_names), or the indices as text."""
    if given is None:
        return [f"class {index}" for index in range(n_classes)]
    if len(given) < n_classes:
        raise DataError(f"{path}: data.class_names names {len(given)} classes and the labels run to "
                        f"{n_classes - 1}; give a name for each of 0 to {n_classes - 1}")
    return list(given)


def refuse_all_empty(kept: np.ndarray, source: object) -> None:
    """No shape has an occupied voxel: say so, rather than that there are 0 shapes to split."""
    if len(kept) > 1 and not kept.any():  # one shape is refused by the split, which needs two
        raise DataError(f"{source}: every one of its {len(kept)} shapes is empty (no occupied voxel)")


def _grids_text(sizes: Counter) -> str:
    return ", ".join(f"{size}^3 ({count} shapes)" for size, count in sorted(sizes.items()))


def _resample_notes(sizes: Counter, resolution: int) -> list[str]:
    """A note for stored grids that reach the resolution by no whole factor."""
    odd = sorted(size for size in sizes if not is_whole_factor(size, resolution))
    if not odd:
        return []
    how = "a voxel is kept where any source voxel it overlaps is occupied" if max(odd) > resolution \
        else "nearest voxel"
    return [f"grids of {', '.join(f'{s}^3' for s in odd)} reach {resolution}^3 by no whole factor ({how})"]


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
           grids: str, up: str, ignored: str = "", dropped_empty: int = 0, notes: list[str] | None = None,
           labelled: bool = False) -> VoxelDataset:
    """The dataset and its summary from a split: drops empty shapes and test shapes identical to a
    training shape, counts the copies kept within each side, keeps the leading training fraction.
    With `labelled`, the groups are class indices into `labels`, kept as the dataset's labels."""
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
        up=up, grids=grids, per_group=table if len(labels) > 1 and not labelled else [], dropped_empty=dropped_empty,
        dropped_test_copies=int(copy.sum()), copies_train=extra_copies(train_ids), copies_test=extra_copies(test_ids),
        ignored=ignored, notes=(notes or []) + ([] if labelled else disjoint_note(table, "files or folders")),
        per_class=table if labelled else [])
    if not labelled:
        return VoxelDataset(train.volumes, test.volumes, name, summary)
    return VoxelDataset(train.volumes, test.volumes, name, summary, train.groups, test.groups, labels)
