"""PNG renders and curves, .npy and mesh export."""

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
import trimesh

from voxgan.export import keep_largest_parts, save_mesh, save_npy, voxels_to_mesh
from voxgan.pictures import LABEL_STRIP_INCHES, downsample_for_render, plot_curves, render_grid


def solid_box(res: int = 8, lo=(2, 1, 3), hi=(6, 5, 7)) -> np.ndarray:
    volume = np.zeros((res, res, res), dtype=bool)
    volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return volume


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


# ---- pictures ---------------------------------------------------------------------------------


def test_render_grid_writes_a_png_with_one_cell_per_volume(tmp_path):
    volumes = torch.rand(5, 1, 16, 16, 16) * 0.4  # probabilities with a channel axis, all below 0.5...
    volumes[1:, :, 4:12, 4:12, 2:14] = 0.9  # ...except a box in four of them: cell 0 renders empty
    path = render_grid(volumes, tmp_path / "sub" / "grid.png", ncols=3, title="samples")
    image = read_png(path)
    height, width = image.shape[:2]
    assert 150 < height < 1000 and 400 < width < 1200  # 2 rows x 3 columns of 200 px cells
    assert width > height
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_render_grid_shows_the_first_row_label_without_a_title(tmp_path):
    """Empty volumes draw nothing, so any dark pixel in the strip above the grid is the label
    (without the strip, the first row's label was drawn above the figure and cut off)."""
    path = render_grid(np.zeros((4, 8, 8, 8)), tmp_path / "labels.png", ncols=2, row_labels=["real", "fake"])
    image = read_png(path)[..., :3].mean(axis=-1)
    strip = round(LABEL_STRIP_INCHES * 80)  # the grid's 80 dpi
    assert image.shape[0] == 2 * 200 + strip
    dark_columns = np.flatnonzero(image[:strip].min(axis=0) < 0.5)
    assert 0 < len(dark_columns) and dark_columns.max() < 100  # text above the first cell, at its left


def test_render_grid_downsamples_large_volumes(tmp_path):
    volume = np.zeros((64, 64, 64), dtype=bool)
    volume[10:50, 30, 5:60] = True  # a one-voxel-thin wall survives the 2x downsampling
    shown = downsample_for_render(volume, max_resolution=32)
    assert shown.shape == (32, 32, 32)
    assert shown.sum() == 20 * 28
    assert downsample_for_render(np.ones((40, 40, 40), bool), max_resolution=32).shape == (20, 20, 20)
    assert downsample_for_render(np.ones((128, 128, 128), bool)).shape == (64, 64, 64)
    read_png(render_grid(np.repeat(np.repeat(np.repeat(volume, 2, 0), 2, 1), 2, 2)[None], tmp_path / "big.png"))


def test_plot_curves_with_nan_and_discriminator_panel(tmp_path):
    history = [
        {"epoch": epoch, "g_loss": 1.0 / (epoch + 1), "d_loss": math.nan if epoch == 2 else 0.7,
         "d_real": 0.8, "d_fake": 0.2}
        for epoch in range(6)
    ]
    with_panel = read_png(plot_curves(history, tmp_path / "curves.png"))
    without = read_png(plot_curves([{"epoch": 0, "g_loss": 1.0, "d_loss": 0.5}], tmp_path / "losses.png"))
    assert with_panel.shape[0] > without.shape[0]  # the D(x)/D(G(z)) panel adds height
    assert with_panel.shape[1] == without.shape[1] > 300


# ---- export -------------------------------------------------------------------------------------


def test_keeping_the_largest_part_drops_debris_and_keeps_corner_touching_parts():
    chair = solid_box()  # 64 voxels
    with_debris = chair.copy()
    with_debris[0, 7, 0] = with_debris[7, 0, 0] = True  # two floating voxels
    corner = chair.copy()
    corner[6, 5, 7] = True  # touches the box's corner (5, 4, 6): the same part under 26-connectivity
    halves = solid_box(lo=(0, 0, 0), hi=(8, 8, 3)) | solid_box(lo=(0, 0, 5), hi=(8, 8, 7))  # 192 and 128 voxels
    empty = np.zeros((8, 8, 8), dtype=bool)
    kept = keep_largest_parts(np.stack([with_debris, corner, halves, empty]).astype(np.float32) * 0.9)
    assert kept.dtype == bool
    np.testing.assert_array_equal(kept[0], chair)
    np.testing.assert_array_equal(kept[1], corner)
    np.testing.assert_array_equal(kept[2], solid_box(lo=(0, 0, 0), hi=(8, 8, 3)))
    assert not kept[3].any()


def test_save_npy_round_trips_as_bool(tmp_path):
    volumes = torch.rand(3, 8, 8, 8)
    loaded = np.load(save_npy(volumes, tmp_path / "samples.npy"))
    assert loaded.dtype == bool
    np.testing.assert_array_equal(loaded, volumes.numpy() > 0.5)


def test_mesh_of_a_solid_box_is_watertight_with_the_boxes_bounds():
    vertices, faces = voxels_to_mesh(solid_box())
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # normals point outwards
    np.testing.assert_allclose(mesh.bounds, [[2, 1, 3], [6, 5, 7]])


def test_mesh_of_a_box_touching_the_border_is_closed():
    mesh = trimesh.Trimesh(*voxels_to_mesh(np.ones((4, 4, 4), np.float32)), process=False)
    assert mesh.is_watertight
    np.testing.assert_allclose(mesh.bounds, [[0, 0, 0], [4, 4, 4]])


def test_voxels_touching_only_along_an_edge_or_a_corner_give_a_watertight_mesh():
    """Marching cubes at exactly 0.5 shares such an edge between four triangles; noisy samples,
    as an untrained generator makes, are full of these pairs."""
    pair = np.zeros((4, 4, 4), bool)
    pair[1, 1, 1] = pair[2, 2, 1] = True  # an edge
    corner = np.zeros((4, 4, 4), bool)
    corner[1, 1, 1] = corner[2, 2, 2] = True  # a corner
    noise = np.random.default_rng(0).random((50, 12, 12, 12)) < np.linspace(0.02, 0.5, 50)[:, None, None, None]
    for volume in [pair, corner, *noise]:
        mesh = trimesh.Trimesh(*voxels_to_mesh(volume), process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        assert (mesh.area_faces > 1e-9).all()
    assert trimesh.Trimesh(*voxels_to_mesh(pair), process=False).body_count == 1  # joined, as 26-connectivity counts


@pytest.mark.parametrize("suffix", [".stl", ".obj", ".OBJ"])
def test_saved_mesh_loads_back_with_the_same_counts(tmp_path, suffix):
    volume = solid_box()
    volume[3, 2, 7:] = True  # a chimney: more than a plain box
    vertices, faces = voxels_to_mesh(volume)
    path = save_mesh(volume, tmp_path / f"shape{suffix}")
    loaded = trimesh.load(path, force="mesh", process=False)
    assert len(loaded.faces) == len(faces)
    if suffix == ".stl":  # STL stores triangles, not shared vertices: merge before counting
        loaded.merge_vertices()
    assert len(loaded.vertices) == len(vertices)
    assert loaded.is_watertight


def test_empty_volume_and_unknown_suffix_are_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        voxels_to_mesh(np.zeros((8, 8, 8), bool))
    with pytest.raises(ValueError, match="unsupported mesh format"):
        save_mesh(solid_box(), tmp_path / "shape.ply")
    assert not (tmp_path / "shape.ply").exists()
