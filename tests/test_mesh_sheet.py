"""The STL sheet of samples that the dashboard shows in 3D: known shapes give known meshes."""

import numpy as np
import pytest
import torch
import trimesh

from voxgan.mesh_sheet import GAP, MAX_TRIANGLES_PER_SHAPE, sample_sheet, save_sample_sheet


def box_volume(a: int, b: int, c: int) -> float:
    """The volume inside the marching-cubes surface of a solid a x b x c block of voxels: the
    block less its 12 edges, bevelled by half a voxel (a prism of 1/8 per unit of length), plus
    the 8 corners those bevels cut twice (2/3 in all)."""
    return a * b * c - (a + b + c) / 2 + 2 / 3


def test_a_solid_box_is_watertight_upright_and_of_the_expected_volume():
    volume = np.zeros((1, 8, 8, 8), dtype=bool)
    volume[0, 2:6, 1:5, 3:7] = True
    sheet = sample_sheet(volume)
    assert sheet.is_watertight and sheet.is_winding_consistent
    assert sheet.volume == pytest.approx(box_volume(4, 4, 4))  # positive: faces point outwards
    # The viewer's y is the volume's up axis (2); x is mirrored (8 - x), so turned, not reflected.
    np.testing.assert_allclose(sheet.bounds, [[8 - 6, 3, 1], [8 - 2, 7, 5]])


def test_shapes_are_laid_out_in_rows_and_an_empty_one_keeps_its_place():
    volumes = torch.zeros(3, 1, 8, 8, 8)  # probabilities with a channel axis, as the generator's
    volumes[0, 0, :2, :3, :4] = 0.9
    volumes[2, 0, :2, :3, :4] = 0.9
    sheet = sample_sheet(volumes)
    bodies = sorted(sheet.split(only_watertight=True), key=lambda body: body.bounds[0][2])
    assert len(bodies) == 2
    pitch = 8 * (1 + GAP)
    np.testing.assert_allclose(bodies[0].bounds, [[6, 0, 0], [8, 4, 3]])
    np.testing.assert_allclose(bodies[1].bounds, [[6, 0, pitch], [8, 4, pitch + 3]])  # index 2: next row
    assert sheet.volume == pytest.approx(2 * box_volume(2, 3, 4))


def test_a_large_volume_is_meshed_coarser_at_its_own_size():
    """A full 64^3 block: at 32^3 its six flat sides alone take 12,288 triangles, over the budget,
    so it is meshed at 16^3, each voxel 4 units wide."""
    sheet = sample_sheet(np.ones((1, 64, 64, 64), dtype=bool))
    assert len(sheet.faces) <= MAX_TRIANGLES_PER_SHAPE
    np.testing.assert_allclose(sheet.bounds, [[0, 0, 0], [64, 64, 64]])
    assert sheet.volume == pytest.approx(4**3 * box_volume(16, 16, 16))


def test_noise_is_coarsened_to_the_triangle_budget_and_the_file_is_small(tmp_path):
    noise = np.random.default_rng(0).random((4, 32, 32, 32)) < 0.3  # an untrained generator's samples
    path = save_sample_sheet(noise, tmp_path / "samples.stl")
    loaded = trimesh.load(path, file_type="stl")
    loaded.merge_vertices()
    assert loaded.is_watertight
    assert len(loaded.faces) <= 4 * MAX_TRIANGLES_PER_SHAPE
    assert path.stat().st_size == 84 + 50 * len(loaded.faces)  # binary STL: a normal per triangle


def test_all_empty_samples_write_no_file(tmp_path):
    assert sample_sheet(np.zeros((4, 8, 8, 8))) is None
    assert save_sample_sheet(np.zeros((4, 8, 8, 8)), tmp_path / "samples.stl") is None
    assert not (tmp_path / "samples.stl").exists()
