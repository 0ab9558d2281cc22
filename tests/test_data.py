"""voxgan.data on real inputs: the 3D ShapeNets chairs, voxel files of every accepted form, the
procedural shapes, the cache, and the one-line errors for bad data."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy import ndimage

from voxgan.config import DataConfig
from voxgan.data import VoxelDataset, load_dataset
from voxgan.data.procedural import FAMILIES, generate_shapes
from voxgan.data.binvox import read_binvox, write_binvox
from voxgan.data.grids import resample
from voxgan.data.voxio import read_mat, read_volumes
from voxgan.errors import DataError


def snapshot(folder: Path) -> dict[str, int]:
    """Every path under `folder` with its mtime, to prove that loading writes nothing there."""
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


def chair_files(chairs_root: Path, split: str = "train") -> list[Path]:
    return sorted((chairs_root / "chair" / "30" / split).glob("*.mat"))


def make_tree(root: Path, chairs_root: Path, n_train: int = 4, n_test: int = 2) -> Path:
    """A tiny `volumetric_data` tree of real chair files."""
    for split, count in (("train", n_train), ("test", n_test)):
        folder = root / "chair" / "30" / split
        folder.mkdir(parents=True)
        for path in chair_files(chairs_root, split)[:count]:
            shutil.copy2(path, folder / path.name)
    return root


def assert_one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# ---- real 3D ShapeNets chairs -------------------------------------------------------------------


def test_mat_reader_reads_real_chairs_as_bool(chairs_root: Path) -> None:
    files = chair_files(chairs_root)[::997] + chair_files(chairs_root, "test")[::301]
    for path in files:
        expected = scipy.io.loadmat(path)["instance"]
        assert expected.shape == (30, 30, 30)
        np.testing.assert_array_equal(read_mat(path), expected != 0)


def test_mat_reader_reads_other_mat_layouts(tmp_path: Path) -> None:
    volume = np.zeros((8, 8, 8), dtype=np.uint8)
    volume[1, 2, 3] = 1
    for compress in (False, True):
        path = tmp_path / f"c{compress}.mat"
        scipy.io.savemat(path, {"aaa": np.eye(3), "instance": volume}, do_compression=compress)
        np.testing.assert_array_equal(read_mat(path), volume.astype(bool))


def test_all_real_chairs_load_with_known_counts_and_cache(chairs_root: Path, cache_dir: Path) -> None:
    before = snapshot(chairs_root / "chair")
    cfg = DataConfig(source=str(chairs_root), category="chair", resolution=32, cache_dir=str(cache_dir))
    start = time.perf_counter()
    cold = load_dataset(cfg)
    cold_s = time.perf_counter() - start
    # 106 of the 1,200 test chairs are, voxel for voxel at 32^3, also training chairs: dropped.
    assert cold.train.shape == (10668, 32, 32, 32) and cold.test.shape == (1094, 32, 32, 32)
    assert cold.summary.dropped_test_copies == 106 and cold.summary.dropped_empty == 0
    assert not set(map(bytes, cold.test)) & set(map(bytes, cold.train))
    assert cold.train.dtype == np.bool_ and cold.train.flags.c_contiguous and cold.test.flags.c_contiguous
    assert cold.resolution == 32
    assert 0.02 < cold.train.mean() < 0.06  # about 4% occupancy
    # The tutorial's padding: the one-voxel border of every padded grid is empty.
    border = np.ones((32, 32, 32), bool)
    border[1:-1, 1:-1, 1:-1] = False
    assert not cold.train[:, border].any() and not cold.test[:, border].any()
    first = chair_files(chairs_root)[0]
    np.testing.assert_array_equal(cold.train[0, 1:-1, 1:-1, 1:-1], scipy.io.loadmat(first)["instance"] != 0)

    start = time.perf_counter()
    cached = load_dataset(cfg)
    cached_s = time.perf_counter() - start
    assert cached_s < cold_s
    # np.array_equal, not assert_array_equal: the latter takes seconds on 350 MB
    assert np.array_equal(cached.train, cold.train) and np.array_equal(cached.test, cold.test)
    assert cached.train.flags.c_contiguous

    small = load_dataset(cfg.model_copy(update={"fraction": 0.25}))
    assert len(small.train) == 2667 and len(small.test) == 1094
    assert np.array_equal(small.train, cold.train[:2667])
    assert snapshot(chairs_root / "chair") == before


def test_real_chairs_stand_along_z_with_their_back_at_plus_x(chairs_root: Path) -> None:
    """The axis convention the procedural shapes copy: floor at low z, back at high x (rotation 1)."""
    chairs = np.stack([read_mat(p) for p in chair_files(chairs_root)[::12][:40]])  # the *_1.mat files
    made = generate_shapes(40, 30, ["chair"], seed=5)
    for volumes in (chairs, made):
        x, _, z = np.nonzero(volumes.sum(axis=0))
        top = z >= np.percentile(z, 80)
        assert x[top].mean() > x.mean() + 2  # the back is the highest part and sits at +x
        per_level = volumes.sum(axis=(0, 1, 2))  # occupancy per z level
        assert per_level[np.nonzero(per_level)[0][0]] < per_level.max() / 2  # thin legs on the floor


def test_resample_to_64_is_the_tutorials_pad_and_zoom(chairs_root: Path) -> None:
    volumes = np.stack([read_mat(p) for p in chair_files(chairs_root)[:6]])
    expected = [ndimage.zoom(np.pad(v.astype(np.int8), 1), 2, mode="constant", order=0) for v in volumes]
    np.testing.assert_array_equal(resample(volumes, 64), np.stack(expected) != 0)
    np.testing.assert_array_equal(resample(volumes, 32), np.pad(volumes, ((0, 0), (1, 1), (1, 1), (1, 1))))


def test_cache_is_invalidated_when_a_file_changes(chairs_root: Path, tmp_path: Path, cache_dir: Path) -> None:
    root = make_tree(tmp_path / "volumetric_data", chairs_root)
    cfg = DataConfig(source=str(root), resolution=32, cache_dir=str(cache_dir))
    before = snapshot(root)
    first = load_dataset(cfg)
    assert (len(first.train), len(first.test)) == (4, 2)
    assert snapshot(root) == before and len(list(cache_dir.iterdir())) == 2

    changed = root / "chair" / "30" / "train" / chair_files(chairs_root)[1].name
    volume = np.zeros((30, 30, 30), dtype=np.int8)
    volume[10:20, 10:20, 5] = 1
    scipy.io.savemat(changed, {"instance": volume})
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = load_dataset(cfg)
    np.testing.assert_array_equal(second.train[1, 1:-1, 1:-1, 1:-1], volume != 0)
    np.testing.assert_array_equal(second.train[[0, 2, 3]], first.train[[0, 2, 3]])

    shutil.copy2(chair_files(chairs_root)[10], changed.parent / "zzz_extra.mat")
    assert len(load_dataset(cfg).train) == 5


def test_cache_defaults_to_voxgan_cache_env(chairs_root: Path, tmp_path: Path, monkeypatch) -> None:
    root = make_tree(tmp_path / "vd", chairs_root, 2, 1)
    monkeypatch.setenv("VOXGAN_CACHE", str(tmp_path / "envcache"))
    load_dataset(DataConfig(source=str(root), resolution=16))
    assert len(list((tmp_path / "envcache").glob("*.npz"))) == 2


def test_corrupt_cache_is_rebuilt(chairs_root: Path, tmp_path: Path, cache_dir: Path) -> None:
    root = make_tree(tmp_path / "vd", chairs_root, 2, 1)
    cfg = DataConfig(source=str(root), resolution=16, cache_dir=str(cache_dir))
    good = load_dataset(cfg)
    for path in cache_dir.iterdir():
        path.write_bytes(b"garbage")
    np.testing.assert_array_equal(load_dataset(cfg).train, good.train)


# ---- resampling known answers --------------------------------------------------------------------


def test_single_voxel_lands_on_exact_positions() -> None:
    volume = np.zeros((1, 30, 30, 30), bool)
    volume[0, 0, 5, 29] = True
    at32 = resample(volume, 32)
    assert [tuple(i) for i in np.argwhere(at32[0])] == [(1, 6, 30)]
    at64 = resample(volume, 64)
    expected = np.zeros((64, 64, 64), bool)
    expected[2:4, 12:14, 60:62] = True
    np.testing.assert_array_equal(at64[0], expected)
    at16 = resample(volume, 16)
    assert [tuple(i) for i in np.argwhere(at16[0])] == [(0, 3, 15)]


def test_max_pooling_keeps_a_one_voxel_leg() -> None:
    volume = np.zeros((2, 32, 32, 32), bool)
    volume[0, 5, 9, 0:20] = True  # a leg one voxel thin
    volume[0, 0:32, 0:32, 20] = True  # a seat
    pooled = resample(volume, 8)
    assert pooled[0, 1, 2, 0:5].all() and pooled[0, :, :, 5].all()
    assert pooled[0].sum() == 5 + 64 and not pooled[1].any()


def test_other_factors_use_nearest_neighbour() -> None:
    volume = np.zeros((1, 24, 24, 24), bool)
    volume[0, :12] = True  # lower half in x
    out = resample(volume, 32)
    assert out.shape == (1, 32, 32, 32)
    assert out[0, :16].all() and not out[0, 16:].any()


# ---- voxel files ---------------------------------------------------------------------------------


def random_volumes(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, size)) < 0.2


@pytest.mark.parametrize("form", ["n_d3", "n_1_d3", "d3"])
@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int64, np.float32])
def test_npy_forms_and_dtypes(tmp_path: Path, form: str, dtype) -> None:
    volumes = random_volumes(5, 16)
    stored = {"n_d3": volumes, "n_1_d3": volumes[:, None], "d3": volumes[0]}[form].astype(dtype)
    np.save(tmp_path / "v.npy", stored)
    expected = volumes if form != "d3" else volumes[:1]
    np.testing.assert_array_equal(read_volumes(tmp_path / "v.npy"), expected)


def test_npz_single_and_named_arrays(tmp_path: Path) -> None:
    volumes = random_volumes(4, 8)
    np.savez_compressed(tmp_path / "one.npz", anything=volumes.astype(np.float64))
    np.savez(tmp_path / "named.npz", labels=np.arange(4), voxels=volumes)
    np.savez(tmp_path / "two.npz", a=volumes, b=volumes)
    np.testing.assert_array_equal(read_volumes(tmp_path / "one.npz"), volumes)
    np.testing.assert_array_equal(read_volumes(tmp_path / "named.npz"), volumes)
    with pytest.raises(DataError) as excinfo:
        read_volumes(tmp_path / "two.npz")
    assert_one_line_error(excinfo, "two.npz", "'voxels'")


def test_array_file_is_split_by_a_seeded_permutation(tmp_path: Path) -> None:
    volumes = random_volumes(50, 16)
    np.save(tmp_path / "shapes.npy", volumes)
    cfg = DataConfig(source=str(tmp_path / "shapes.npy"), resolution=32, test_fraction=0.2, seed=3)
    data = load_dataset(cfg)
    assert (len(data.train), len(data.test), data.resolution, data.name) == (40, 10, 32, "shapes.npy")
    again = load_dataset(cfg)
    np.testing.assert_array_equal(again.test, data.test)
    pooled_back = resample(np.concatenate([data.train, data.test]), 16)
    assert sorted(map(bytes, pooled_back)) == sorted(map(bytes, volumes))  # disjoint and complete
    other = load_dataset(cfg.model_copy(update={"seed": 4}))
    assert not np.array_equal(other.test, data.test)
    assert len(load_dataset(cfg.model_copy(update={"fraction": 0.5})).train) == 20


def test_folder_of_files_is_split_per_shape_or_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "shapes"
    folder.mkdir()
    volumes = random_volumes(10, 32)
    for i in range(8):
        np.save(folder / f"s{i}.npy", volumes[i : i + 1])
    np.savez(folder / "s8.npz", volumes[8])
    write_binvox(folder / "s9.binvox", np.rot90(volumes[9], -1, axes=(1, 2)))  # y up, as binvox files are
    (folder / "notes.txt").write_text("ignored")
    before = snapshot(folder)
    data = load_dataset(DataConfig(source=str(folder), resolution=32, test_fraction=0.2))
    assert (len(data.train), len(data.test)) == (8, 2)
    assert sorted(map(bytes, np.concatenate([data.train, data.test]))) == sorted(map(bytes, volumes))
    assert snapshot(folder) == before
    by_file = load_dataset(DataConfig(source=str(folder), resolution=32, test_fraction=0.2, split="files", seed=1))
    assert (len(by_file.train), len(by_file.test)) == (8, 2)
    half = load_dataset(DataConfig(source=str(folder), resolution=16, test_fraction=0.2, fraction=0.5))
    assert (len(half.train), len(half.test), half.resolution) == (4, 2, 16)


def test_binvox_round_trip(tmp_path: Path) -> None:
    volume = random_volumes(1, 20)[0]
    volume[:, :, :10] = True  # runs longer than 255 voxels
    write_binvox(tmp_path / "v.binvox", volume)
    np.testing.assert_array_equal(read_binvox(tmp_path / "v.binvox"), volume)


def test_binvox_known_bytes(tmp_path: Path) -> None:
    """2^3 grid, voxel index 3 set: index = x*4 + z*2 + y (y fastest, then z, then x)."""
    header = b"#binvox 1\ndim 2 2 2\ntranslate 0.0 0.0 0.0\nscale 1.0\ndata\n"
    (tmp_path / "k.binvox").write_bytes(header + bytes([0, 3, 1, 1, 0, 4]))
    volume = read_binvox(tmp_path / "k.binvox")
    assert [tuple(i) for i in np.argwhere(volume)] == [(0, 1, 1)]
    write_binvox(tmp_path / "w.binvox", volume)
    assert (tmp_path / "w.binvox").read_bytes() == header + bytes([0, 3, 1, 1, 0, 4])
    only_y = np.zeros((2, 2, 2), bool)
    only_y[0, 1, 0] = True  # x=0, y=1, z=0 -> index 1
    write_binvox(tmp_path / "y.binvox", only_y)
    assert (tmp_path / "y.binvox").read_bytes().endswith(bytes([0, 1, 1, 1, 0, 6]))


# ---- procedural shapes ---------------------------------------------------------------------------


def test_procedural_is_deterministic_per_seed() -> None:
    a = generate_shapes(30, 32, FAMILIES, seed=7)
    np.testing.assert_array_equal(a, generate_shapes(30, 32, FAMILIES, seed=7))
    assert not np.array_equal(a, generate_shapes(30, 32, FAMILIES, seed=8))
    np.testing.assert_array_equal(a[:10], generate_shapes(10, 32, FAMILIES, seed=7))
    assert len({bytes(v) for v in a}) == 30  # random proportions: no two shapes alike


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_every_family_is_one_solid_inside_the_grid(resolution: int) -> None:
    shapes = generate_shapes(len(FAMILIES) * 6, resolution, FAMILIES, seed=1)
    for family_index, family in enumerate(FAMILIES):
        for volume in shapes[family_index :: len(FAMILIES)]:
            assert volume.any(), family
            assert ndimage.label(volume, np.ones((3, 3, 3)))[1] == 1, f"{family} falls apart at {resolution}^3"
            inner = np.zeros_like(volume)
            inner[1:-1, 1:-1, 1:-1] = True
            assert not volume[~inner].any(), f"{family} touches the border"
            assert volume[:, :, : resolution // 5].any(), f"{family} does not stand on the floor"


def test_procedural_dataset_split_speed_and_fraction() -> None:
    start = time.perf_counter()
    data = load_dataset(DataConfig(n_shapes=600, resolution=32))
    assert time.perf_counter() - start < 2.0
    assert isinstance(data, VoxelDataset)
    assert (data.train.shape, data.test.shape) == ((540, 32, 32, 32), (60, 32, 32, 32))
    assert data.train.flags.c_contiguous and data.test.dtype == np.bool_
    np.testing.assert_array_equal(data.test, generate_shapes(600, 32, ["chair", "table", "lamp"], 0)[540:])
    assert len(load_dataset(DataConfig(n_shapes=100, fraction=0.1)).train) == 9


# ---- bad data ------------------------------------------------------------------------------------


def write_mat(path: Path, contents: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, contents)
    return path


@pytest.mark.parametrize(
    "contents, problem",
    [
        (b"this is not a MAT file at all" * 10, "not a readable .mat file"),
        ({"voxels": np.zeros((30, 30, 30), np.int8)}, "no variable 'instance'"),
        ({"instance": np.zeros((30, 30, 20), np.int8)}, "cubic"),
        ({"instance": np.full((30, 30, 30), 2, np.int8)}, "0 or 1"),
        ({"instance": np.full((30, 30, 30), 0.5)}, "0 or 1"),
    ],
    ids=["unreadable", "missing-key", "wrong-shape", "non-binary-int", "non-binary-float"],
)
def test_bad_mat_file_names_the_file(chairs_root: Path, tmp_path: Path, cache_dir: Path, contents, problem) -> None:
    root = make_tree(tmp_path / "vd", chairs_root, 3, 1)
    bad = root / "chair" / "30" / "train" / "chair_bad.mat"
    if isinstance(contents, bytes):
        bad.write_bytes(contents)
    else:
        write_mat(bad, contents)
    before = snapshot(root)
    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(root), cache_dir=str(cache_dir)))
    assert_one_line_error(excinfo, "chair_bad.mat", problem)
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "array, problem",
    [
        (np.zeros((4, 8, 8, 6)), "cubic"),
        (np.zeros((2, 3, 8, 8, 8)), "cubic"),
        (np.full((4, 8, 8, 8), 3), "0 or 1"),
        (np.full((4, 8, 8, 8), np.nan), "0 or 1"),
        (np.zeros((4, 8, 8, 8), dtype=np.complex64), "dtype"),
    ],
    ids=["not-cubic", "channels", "non-binary", "nan", "complex"],
)
def test_bad_npy_names_the_file(tmp_path: Path, array: np.ndarray, problem: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(tmp_path / "bad.npy")))
    assert_one_line_error(excinfo, "bad.npy", problem)


def test_bad_binvox_and_junk_npy(tmp_path: Path) -> None:
    (tmp_path / "short.binvox").write_bytes(b"#binvox 1\ndim 4 4 4\ndata\n" + bytes([1, 10]))
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "nohead.binvox").write_bytes(b"hello")
    for name, problem in (("short.binvox", "holds 10 voxels"), ("junk.npy", "not a readable"),
                          ("nohead.binvox", "not a voxel file")):
        with pytest.raises(DataError) as excinfo:
            read_volumes(tmp_path / name)
        assert_one_line_error(excinfo, name, problem)


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "one.npy").write_bytes(b"")
    np.save(tmp_path / "single.npy", np.zeros((8, 8, 8), bool))
    (tmp_path / "shapes.txt").write_text("no")
    cases = [
        (tmp_path / "nowhere", "no such file or folder"),
        (tmp_path / "empty", "no .npy/.npz/.npy.gz/.npz.gz/.binvox/.mat files at any depth"),
        (tmp_path / "single.npy", "at least 2"),
        (tmp_path / "shapes.txt", "unsupported file type"),
    ]
    for source, problem in cases:
        with pytest.raises(DataError) as excinfo:
            load_dataset(DataConfig(source=str(source)))
        assert_one_line_error(excinfo, source.name, problem)


def test_shapenets_tree_problems(chairs_root: Path, tmp_path: Path, cache_dir: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(chairs_root), category="airplane", cache_dir=str(cache_dir)))
    assert_one_line_error(excinfo, "no category 'airplane'", "found: chair")

    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(chairs_root / "chair"), cache_dir=str(cache_dir)))
    assert_one_line_error(excinfo, "data.category=chair")

    root = make_tree(tmp_path / "vd", chairs_root, 2, 0)
    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(root), cache_dir=str(cache_dir)))
    assert_one_line_error(excinfo, "test", "no .mat files")
    shutil.rmtree(root / "chair" / "30" / "test")
    with pytest.raises(DataError) as excinfo:
        load_dataset(DataConfig(source=str(root), cache_dir=str(cache_dir)))
    assert_one_line_error(excinfo, "test", "no such folder")
    assert not list(cache_dir.iterdir()) or all(p.suffix == ".npz" for p in cache_dir.iterdir())
