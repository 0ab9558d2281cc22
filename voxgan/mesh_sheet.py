"""A few generated shapes as one small surface mesh, for a 3D view in a web page.

Optuna Dashboard (0.17 to 0.20) draws a trial artifact whose name ends in `.stl` or `.obj` in a
three.js view, one WebGL canvas per file: y up, the camera on the (+x, +y, +z) diagonal looking
at the mesh's centre, faces coloured by their normals. So the samples of one evaluation go into
one binary STL (it carries a normal per triangle; an OBJ without normals shows flat), laid out
on the viewer's floor in rows of `SHEET_COLUMNS`, turned upright and towards the camera.

Size target: at most `MAX_TRIANGLES_PER_SHAPE` triangles a shape, 50 bytes each in binary STL,
so four samples take at most 800 KB; a 32^3 chair has some 2,500 to 4,500 triangles, a 16^3 one
about 1,000. Each surface is the `voxgan.export.voxels_to_mesh` marching-cubes surface of the
volume max-pooled (`voxgan.pictures.downsample_for_render`) to the finest of
`SHEET_RESOLUTIONS` that keeps within the budget: a 64^3 shape is shown at 32^3, and a noisy,
untrained sample, whose surface has far more triangles than a shape's, coarser still.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh

from voxgan.export import voxels_to_mesh
from voxgan.metrics import THRESHOLD
from voxgan.pictures import as_volume_batch, downsample_for_render, shrink_factor

SHEET_COLUMNS = 2
MAX_TRIANGLES_PER_SHAPE = 4000
SHEET_RESOLUTIONS = (32, 16, 8, 4)
"""Tried in turn; the surface of a 4^3 volume has a few hundred triangles at most, so the budget holds."""
GAP = 0.25
"""Space between neighbouring shapes, as a fraction of the grid's size."""


def coarse_surface(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The surface of one non-empty bool volume at the finest of `SHEET_RESOLUTIONS` within
    `MAX_TRIANGLES_PER_SHAPE`, with vertices in the volume's own voxel units (a shape keeps its
    size however coarsely it is meshed)."""
    for resolution in SHEET_RESOLUTIONS:
        vertices, faces = voxels_to_mesh(downsample_for_render(volume, resolution))
        if len(faces) <= MAX_TRIANGLES_PER_SHAPE:
            break
    return vertices * shrink_factor(volume.shape, resolution), faces


def to_viewer_frame(vertices: np.ndarray, size: int) -> np.ndarray:
    """Volume coordinates (axis 2 up) -> the viewer's (y up), by a rotation, so faces stay wound
    outwards: x' = size - x, y' = z, z' = y. The camera on the viewer's (+x, +z) diagonal then
    looks from the volume's (-x, +y) side, as the PNG renders do (`voxgan.pictures.VIEW_AZIMUTH`)."""
    return np.stack([size - vertices[:, 0], vertices[:, 2], vertices[:, 1]], axis=1)


def sample_sheet(volumes: np.ndarray | torch.Tensor, threshold: float = THRESHOLD) -> trimesh.Trimesh | None:
    """One mesh of all `volumes` ((N, R, R, R) or (N, 1, R, R, R), thresholded like the pictures),
    shape i at column i % SHEET_COLUMNS and row i // SHEET_COLUMNS of the viewer's floor. An empty
    volume leaves its place empty; None when all are empty (there is no surface to show)."""
    batch = as_volume_batch(volumes, threshold)
    size = max(batch.shape[1:])
    pitch = size * (1 + GAP)
    parts = []
    for index, volume in enumerate(batch):
        if not volume.any():
            continue
        vertices, faces = coarse_surface(volume)
        offset = np.array([index % SHEET_COLUMNS * pitch, 0.0, index // SHEET_COLUMNS * pitch])
        parts.append(trimesh.Trimesh(vertices=to_viewer_frame(vertices, size) + offset, faces=faces, process=False))
    return trimesh.util.concatenate(parts) if parts else None


def save_sample_sheet(volumes: np.ndarray | torch.Tensor, path: str | Path, threshold: float = THRESHOLD) -> Path | None:
    """Write the `sample_sheet` of `volumes` as a binary STL at `path`; nothing (None) when every
    volume is empty."""
    sheet = sample_sheet(volumes, threshold)
    if sheet is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.export(path, file_type="stl")
    return path
