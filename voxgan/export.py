"""Generated shapes out of voxgan: bool arrays for other models, meshes for printing and design.

Volumes are thresholded at `threshold` (bool kept as is), the same convention as the metrics and
pictures, so a saved mesh is exactly the shape that was scored and shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes

from voxgan.metrics import THRESHOLD, as_bool, largest_part

MESH_SUFFIXES = (".obj", ".stl")


def keep_largest_parts(volumes: np.ndarray | torch.Tensor, threshold: float = THRESHOLD) -> np.ndarray:
    """Each shape's largest 26-connected part alone, as bool volumes: a clean-up for printing,
    where a shape must be one solid. Never applied before scoring: the metrics see raw samples,
    debris included (`metrics.structure_metrics`)."""
    return np.stack([largest_part(grid) for grid in as_bool(volumes, threshold)])


def save_npy(volumes: np.ndarray | torch.Tensor, path: str | Path, threshold: float = THRESHOLD) -> Path:
    """Save volumes as one bool .npy array (1 byte per voxel, loads with plain `np.load`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, as_bool(volumes, threshold))
    return path


def voxels_to_mesh(volume: np.ndarray | torch.Tensor, threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Closed triangle surface of one (R, R, R) volume: (vertices (V, 3) float, faces (F, 3) int).

    Marching cubes (scikit-image) runs on the thresholded 0/1 volume padded by one empty voxel on
    every side, so shapes touching the grid border are closed too and the mesh is watertight.
    One voxel is one unit and voxel (i, j, k) spans [i, i+1] x [j, j+1] x [k, k+1]: a solid block
    of voxels has the block's bounding box (its edges and corners are bevelled, as marching
    cubes on 0/1 data does). Axes are the array's axes; 3D ShapeNets shapes have z (axis 2) up.
    Faces are wound so their normals point outwards.

    An empty volume has no surface: it raises ValueError rather than returning an empty mesh
    that would silently produce an empty file.
    """
    occupied = as_bool(volume, threshold)
    if occupied.ndim != 3:
        raise ValueError(f"expected one volume of shape (R, R, R), got shape {occupied.shape}")
    if not occupied.any():
        raise ValueError("the volume is empty (no voxel above the threshold): there is no surface to mesh")
    padded = np.pad(occupied, 1).astype(np.float32)
    # At a level of exactly 0.5, two voxels that touch only along an edge share that edge between
    # four triangles: not a manifold, so not watertight (most noisy samples have such a pair). A
    # level a hair below resolves each of these saddles as connected, as the 26-connected
    # structure metrics count such voxels; rounding the vertices to the half-voxel grid then puts
    # them back on the voxels' faces, where 0.5 would have put them.
    vertices, faces, _normals, _values = marching_cubes(padded, level=0.5 - 1e-3, gradient_direction="ascent")
    vertices = np.round(vertices * 2) / 2
    # Padded index p is voxel p - 1, whose cell starts half a voxel before its centre.
    return vertices - 0.5, faces.astype(np.int64)


def save_mesh(volume: np.ndarray | torch.Tensor, path: str | Path, threshold: float = THRESHOLD) -> Path:
    """Write the `voxels_to_mesh` surface of one volume as .obj or .stl, chosen by the suffix."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"{path}: unsupported mesh format '{path.suffix}' (use one of {', '.join(MESH_SUFFIXES)})")
    vertices, faces = voxels_to_mesh(volume, threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(vertices=vertices, faces=faces, process=False).export(path)
    return path
