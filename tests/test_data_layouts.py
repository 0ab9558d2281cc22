"""Data as users bring it: each format and layout written here, small, by the test itself.

Orientation (binvox y-up, arrays z-up), ShapeNetCore-like nested folders, seeded splits,
empty and duplicate shapes, gzip, the messages for bad files, keys that act on another source,
and the 3D ShapeNets rotations (fake .mat trees in the data set's naming)."""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from voxgan.config import Config, DataConfig
from voxgan.data import load_dataset
from voxgan.data.binvox import write_binvox
from voxgan.data.procedural import generate_shapes
from voxgan.errors import ConfigError, DataError

R = 16


def chairs(n: int = 2, seed: int = 3) -> np.ndarray:
    """Chairs z-up, back at +x: asymmetric along every axis that a wrong turn would swap."""
    return generate_shapes(n, R, ["chair"], seed=seed)


def y_up(volume: np.ndarray) -> np.ndarray:
    """The same chair in a right-handed y-up frame (ShapeNetCore's): y_up[x, y, z] is the z-up
    voxel (x, R-1-z, y), written out index by index rather than with the code under test."""
    out = np.zeros_like(volume)
    for x, y, z in np.argwhere(volume):  # z-up coordinates (X, Y, Z) = (x, -z, y) in the y-up frame
        out[x, z, R - 1 - y] = True
    return out


def save_npz_gz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(gzip.compress(buffer.getvalue()))


def save_npy_gz(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    path.write_bytes(gzip.compress(buffer.getvalue()))


WRITERS = {
    "binvox (y up)": lambda folder, i, v: write_binvox(folder / f"c{i}.binvox", y_up(v)),
    "npy": lambda folder, i, v: np.save(folder / f"c{i}.npy", v),
    "npz": lambda folder, i, v: np.savez(folder / f"c{i}.npz", voxels=v),
    "npy.gz": lambda folder, i, v: save_npy_gz(folder / f"c{i}.npy.gz", v[None]),
    "npz.gz": lambda folder, i, v: save_npz_gz(folder / f"c{i}.npz.gz", voxels=v[None, None]),
    "mat": lambda folder, i, v: scipy.io.savemat(folder / f"c{i}.mat", {"instance": v.astype(np.uint8)}),
}


def shape_set(data) -> list[bytes]:
    return sorted(map(bytes, np.concatenate([data.train, data.test])))


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_format_comes_out_z_up_the_same_way(tmp_path: Path, fmt: str) -> None:
    expected = chairs()
    for i, volume in enumerate(expected):
        WRITERS[fmt](tmp_path, i, volume)
    data = load_dataset(DataConfig(source=str(tmp_path), resolution=R, test_fraction=0.5))
    assert shape_set(data) == sorted(map(bytes, expected))
    assert "up axis" in data.summary.text()
    volume = data.train[0]
    per_level = volume.sum(axis=(0, 1))
    assert per_level[np.nonzero(per_level)[0][0]] < per_level.max() / 2  # thin legs at the bottom


def test_up_axis_setting_overrides_the_format_default(tmp_path: Path) -> None:
    expected = chairs()
    for i, volume in enumerate(expected):
        np.save(tmp_path / f"c{i}.npy", y_up(volume))
    upright = load_dataset(DataConfig(source=str(tmp_path), resolution=R, test_fraction=0.5, up_axis="y"))
    assert shape_set(upright) == sorted(map(bytes, expected))
    assert "y, turned to z" in upright.summary.text()
    lying = load_dataset(DataConfig(source=str(tmp_path), resolution=R, test_fraction=0.5))
    assert shape_set(lying) != sorted(map(bytes, expected))
    for axis, stored in (("x", lambda v: np.rot90(v, -1, axes=(0, 2))), ("-z", lambda v: v[:, ::-1, ::-1])):
        folder = tmp_path / axis
        folder.mkdir()
        for i, volume in enumerate(expected):
            np.save(folder / f"c{i}.npy", stored(volume))
        turned = load_dataset(DataConfig(source=str(folder), resolution=R, test_fraction=0.5, up_axis=axis))
        assert shape_set(turned) == sorted(map(bytes, expected)), axis


def shapenetcore_v2(root: Path, volumes: np.ndarray, surface: bool = False) -> Path:
    """`<synset>/<model id>/models/model_normalized.solid.binvox`, y-up, with the files around it."""
    for i, volume in enumerate(volumes):
        models = root / "03001627" / f"{i:08x}abc" / "models"
        models.mkdir(parents=True)
        write_binvox(models / "model_normalized.solid.binvox", y_up(volume))
        if surface:
            write_binvox(models / "model_normalized.surface.binvox", y_up(volume))
        (models / "model_normalized.obj").write_text("v 0 0 0\n")
        (models / "model_normalized.json").write_text("{}")
    (root / ".cache").mkdir()
    np.save(root / ".cache" / "hidden.npy", np.ones((2, R, R, R), bool))  # hidden folders are skipped
    return root


def test_shapenetcore_nested_folders_are_read_at_any_depth(tmp_path: Path) -> None:
    expected = chairs(6)
    root = shapenetcore_v2(tmp_path / "ShapeNetCore.v2", expected, surface=True)
    with pytest.raises(DataError, match="both a solid and a surface voxelisation.*data.pattern='\\*.solid.binvox'"):
        load_dataset(DataConfig(source=str(root), resolution=R))
    data = load_dataset(DataConfig(source=str(root), resolution=R, pattern="*.solid.binvox"))
    assert shape_set(data) == sorted(map(bytes, expected))
    text = data.summary.text()
    assert "12 other files (6 .json, 6 .obj)" in text and "6 voxel files not matching data.pattern" in text
    with pytest.raises(DataError, match=r"more than 5 voxel files \(data.max_files\)"):
        load_dataset(DataConfig(source=str(root), resolution=R, pattern="*.solid.binvox", max_files=5))

    flat = tmp_path / "v1"
    for i, volume in enumerate(expected[:3]):
        (flat / f"model{i}").mkdir(parents=True)
        write_binvox(flat / f"model{i}" / "model.binvox", y_up(volume))
    (flat / "model0" / "loop").symlink_to(flat, target_is_directory=True)  # a link back up is read once
    data = load_dataset(DataConfig(source=str(flat), resolution=R))
    assert shape_set(data) == sorted(map(bytes, expected[:3])) and "3 files" in data.name


def test_folder_without_voxel_files_names_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "model.obj").write_text("v 0 0 0\n")
    (tmp_path / "a" / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(tmp_path)))
    message = str(excinfo.value)
    assert "at any depth" in message and "found 2 other files (1 .obj, 1 .txt)" in message and "\n" not in message


def test_shapes_are_split_at_random_per_shape_by_default(tmp_path: Path) -> None:
    """One .npy of many chairs beside three .binvox files: a 10% share of all shapes is held out,
    not the three last files; chair.npy and table.npy are both in train and in test."""
    np.save(tmp_path / "chair.npy", chairs(40, seed=1))
    np.save(tmp_path / "table.npy", generate_shapes(40, R, ["table"], seed=2))
    data = load_dataset(DataConfig(source=str(tmp_path), resolution=R, seed=5))
    rows = {label: (train, test) for label, train, test in data.summary.per_group}
    assert sum(rows["chair.npy"]) + sum(rows["table.npy"]) == len(data.train) + len(data.test)
    assert all(train > 0 and test > 0 for train, test in rows.values()), rows
    assert abs(len(data.test) - 0.1 * (len(data.train) + len(data.test))) <= 1
    assert "each distinct shape at random (seed 5" in data.summary.text()
    again = load_dataset(DataConfig(source=str(tmp_path), resolution=R, seed=5))
    np.testing.assert_array_equal(again.test, data.test)
    assert not np.array_equal(load_dataset(DataConfig(source=str(tmp_path), resolution=R, seed=6)).test, data.test)

    by_file = load_dataset(DataConfig(source=str(tmp_path), resolution=R, split="files", seed=5))
    text = by_file.summary.text()
    assert "whole files at random (data.split=files" in text
    assert "note: train and test come from different files or folders" in text


def test_empty_shapes_are_dropped_and_copies_never_straddle_the_split(tmp_path: Path) -> None:
    shapes = chairs(30, seed=4)
    distinct = len(set(map(bytes, shapes)))
    shapes[0] = False  # ModelNet10's placeholder
    with_copies = np.concatenate([shapes, shapes[5:8], shapes[5:6]])  # 4 copies of 3 shapes
    np.save(tmp_path / "chairs.npy", with_copies)
    data = load_dataset(DataConfig(source=str(tmp_path / "chairs.npy"), resolution=R, test_fraction=0.3))
    assert data.summary.dropped_empty == 1
    assert not (data.train.reshape(len(data.train), -1).any(axis=1) == 0).any()
    assert not set(map(bytes, data.test)) & set(map(bytes, data.train))
    kept = data.summary.copies_train + data.summary.copies_test
    assert len(data.train) + len(data.test) == len(with_copies) - 1 and kept == 4 + 30 - distinct
    assert "dropped: 1 empty shapes" in data.summary.text()

    folder = tmp_path / "files"
    folder.mkdir()
    noise = np.random.default_rng(0).random((25, R, R, R)) < 0.1  # 25 distinct shapes
    np.save(folder / "a.npy", noise[:20])
    np.save(folder / "b.npy", noise[15:])  # 5 shapes in both files
    for seed in range(4):
        split = load_dataset(DataConfig(source=str(folder), resolution=R, split="files", test_fraction=0.5, seed=seed))
        assert not set(map(bytes, split.test)) & set(map(bytes, split.train))
        assert split.summary.dropped_test_copies == 5


@pytest.mark.parametrize(
    "write, problem",
    [
        (lambda p: np.save(p, np.zeros((0, 8, 8, 8), bool)), "holds no shapes (an empty array of shape (0, 8, 8, 8))"),
        (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), "not a voxel file"),
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "holds Python objects"),
        (lambda p: np.save(p, np.full((3, 8, 8, 8), 255, np.uint8) * (np.arange(8) % 2)),
         "found 255; the values are 0 and 255, an 8-bit mask: save (array > 0)"),
        (lambda p: np.save(p, np.full((3, 8, 8, 8), 0.4)), "found 0.4; the values lie between 0 and 1"),
    ],
    ids=["empty-array", "pickle", "object-array", "0-255", "soft"],
)
def test_bad_arrays_get_one_line_with_the_fix(tmp_path: Path, write, problem: str) -> None:
    path = tmp_path / "shapes.npy"
    write(path)
    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(path)))
    message = str(excinfo.value)
    assert problem in message and "\n" not in message and "allow_pickle" not in message
    assert "np.uint8" not in message


def test_wrong_extension_is_read_by_its_contents(tmp_path: Path) -> None:
    volumes = chairs(4)
    with open(tmp_path / "shapes.npy", "wb") as file:
        np.savez(file, voxels=volumes)  # an .npz archive named .npy
    assert shape_set(load_dataset(DataConfig(source=str(tmp_path / "shapes.npy"), resolution=R))) == \
        sorted(map(bytes, volumes))


def test_one_shape_file_says_a_folder_is_needed(tmp_path: Path) -> None:
    write_binvox(tmp_path / "chair.binvox", chairs(1)[0])
    with pytest.raises(DataError, match="chair.binvox: a .binvox file holds one shape.*use the folder"):
        load_dataset(DataConfig(source=str(tmp_path / "chair.binvox")))


def test_keys_for_another_source_are_refused_and_not_saved(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.n_shapes=320 has no effect on a file or folder source"):
        Config.from_dict({"data": {"source": str(tmp_path), "n_shapes": 320}})
    with pytest.raises(ConfigError, match="data.families"):
        Config.from_dict({"data": {"source": str(tmp_path), "families": ["chair"]}})
    with pytest.raises(ConfigError, match="data.up_axis=y has no effect on the procedural source"):
        Config.from_dict({"data": {"up_axis": "y"}})
    saved = Config.from_dict({"data": {"source": str(tmp_path)}}).to_dict()["data"]
    assert "n_shapes" not in saved and "families" not in saved and saved["up_axis"] == "auto"
    assert "category" not in Config().to_dict()["data"]
    path = tmp_path / "run.yaml"
    Config.from_dict({"data": {"source": str(tmp_path), "up_axis": "y"}}).save(path)
    assert Config.load(path).data.up_axis == "y"

    np.save(tmp_path / "chairs.npy", chairs(4))
    with pytest.raises(DataError, match="data.category=table has no effect on a voxel files source"):
        load_dataset(DataConfig(source=str(tmp_path), category="table"))
    tree = fake_tree(tmp_path / "vd", models={"train": 2, "test": 1})
    with pytest.raises(DataError, match="data.test_fraction=0.2 has no effect on a 3D ShapeNets source"):
        load_dataset(DataConfig(source=str(tree), test_fraction=0.2, cache_dir=str(tmp_path / "cache")))


# ---- 3D ShapeNets rotations -----------------------------------------------------------------------


def fake_tree(root: Path, models: dict[str, int], category: str = "chair") -> Path:
    """A `volumetric_data` tree of 30^3 .mat files named `<category>_<model>_<rotation>.mat`, each
    file a different box so that every (model, rotation) can be told apart."""
    for split, count in models.items():
        folder = root / category / "30" / split
        folder.mkdir(parents=True)
        for model in range(count):
            for rotation in range(1, 13):
                volume = np.zeros((30, 30, 30), np.uint8)
                volume[2 : 3 + rotation, 2 : 4 + model, 2 : 4 + (split == "test")] = 1
                scipy.io.savemat(folder / f"{category}_{model:09d}_{rotation}.mat", {"instance": volume})
    return root


def test_rotations_choose_the_files_of_each_model(tmp_path: Path) -> None:
    root = fake_tree(tmp_path / "vd", {"train": 3, "test": 1})
    cache = str(tmp_path / "cache")
    every = load_dataset(DataConfig(source=str(root), resolution=32, cache_dir=cache))
    assert (len(every.train), len(every.test)) == (36, 12)
    aligned = load_dataset(DataConfig(source=str(root), resolution=32, cache_dir=cache, rotations=[1]))
    assert (len(aligned.train), len(aligned.test)) == (3, 1)
    assert "rotations 1" in aligned.summary.text()
    x_extent = {int(np.ptp(np.nonzero(v.any(axis=(1, 2)))[0])) + 1 for v in np.concatenate([aligned.train, aligned.test])}
    assert x_extent == {2}  # rotation n spans n + 1 voxels along x
    two = load_dataset(DataConfig(source=str(root), resolution=32, cache_dir=cache, rotations=[7, 1]))
    assert (len(two.train), len(two.test)) == (6, 2)
    np.testing.assert_array_equal(load_dataset(DataConfig(source=str(root), resolution=32, cache_dir=cache,
                                                          rotations=[1])).train, aligned.train)

    scipy.io.savemat(root / "chair" / "30" / "train" / "extra.mat", {"instance": np.ones((30, 30, 30), np.uint8)})
    with pytest.raises(DataError, match="extra.mat: no rotation suffix _1 to _12"):
        load_dataset(DataConfig(source=str(root), resolution=32, cache_dir=cache, rotations=[1]))
    with pytest.raises(ConfigError, match="data.rotations"):
        Config.from_dict({"data": {"source": str(root), "rotations": [13]}})
    with pytest.raises(DataError, match="use its parent as data.source and data.category=chair"):
        load_dataset(DataConfig(source=str(root / "chair" / "30" / "train")))


def test_real_chairs_have_889_train_and_100_test_models_at_rotation_1(chairs_root: Path, tmp_path: Path) -> None:
    data = load_dataset(DataConfig(source=str(chairs_root), resolution=16, rotations=[1], cache_dir=str(tmp_path)))
    assert len(data.train) == 889 and len(data.test) + data.summary.dropped_test_copies == 100
