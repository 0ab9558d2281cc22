"""Bringing voxel grids of any file to the networks' frame: standing along z, at the resolution
the networks work at.

Orientation. voxgan stores every shape z-up (axis 2), as the 3D ShapeNets chairs are: the networks, the
renders and the metrics all assume it. Formats disagree: ShapeNetCore's .binvox files are y-up,
most arrays (.npy/.npz, ModelNet, 3D ShapeNets .mat) are z-up. `data.up_axis=auto` uses each
format's convention below; any other value names the up axis of every file of the source.
Turns are proper rotations by 90 or 180 degrees (np.rot90), never mirror images, so a chair's
left and right stay where they were.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import block_reduce

SHAPENETS_SIZE = 30
"""Edge of the 3D ShapeNets grids; the tutorial pads them by one voxel per side to 32."""


def resample(volumes: np.ndarray, resolution: int) -> np.ndarray:
    """(N, D, D, D) bool grids brought to (N, R, R, R), vectorised over N.

    - D = 30 (3D ShapeNets) is first padded by one empty voxel per side to 32, the tutorial's
      preprocessing; 32 -> 64 is then the tutorial's `zoom(v, 2, mode='constant', order=0)`, which
      for a factor of 2 is exactly voxel repetition (a test checks it against scipy).
    - Integer upsampling repeats each voxel f^3 times (nearest neighbour).
    - Integer downsampling keeps a block if ANY of its voxels is occupied (max-pooling): the
      chairs' legs and back slats are often one voxel thin, and averaging or sampling a block would
      delete them and leave seats floating in the air.
    - Other upsampling factors take the nearest source voxel of each target voxel centre, which
      repeats every source voxel once or twice.
    - Other downsampling factors (38 -> 32) keep a target voxel if ANY source voxel it overlaps is
      occupied, one axis at a time. Every source voxel then lands in a target voxel and
      neighbours land in the same or neighbouring ones, so a connected part stays connected;
      taking the nearest voxel instead drops a thin leg's voxels between the sampled centres.
    """
    volumes = np.asarray(volumes, dtype=bool)
    if volumes.ndim != 4 or len(set(volumes.shape[1:])) != 1:
        raise ValueError(f"resample expects (N, D, D, D) volumes, got shape {volumes.shape}")
    if volumes.shape[1] == SHAPENETS_SIZE:
        volumes = np.pad(volumes, ((0, 0), (1, 1), (1, 1), (1, 1)))
    size = volumes.shape[1]
    if size == resolution:
        return np.ascontiguousarray(volumes)
    if resolution % size == 0:
        factor = resolution // size
        # Innermost axis first, while the array is smallest: repeating the last axis of the
        # full-size array is element by element and ten times slower (12 s for all chairs at 64).
        return volumes.repeat(factor, axis=3).repeat(factor, axis=2).repeat(factor, axis=1)
    if size % resolution == 0:
        factor = size // resolution
        for block in ((1, factor, 1, 1), (1, 1, factor, 1), (1, 1, 1, factor)):
            # one axis at a time: 2.3x faster than one block of factor^3 (2,000 shapes 64 -> 32)
            volumes = block_reduce(volumes, block, np.any)
        return np.ascontiguousarray(volumes)
    if resolution > size:
        nearest = ((np.arange(resolution) + 0.5) * size / resolution).astype(np.intp)
        return np.ascontiguousarray(volumes[:, nearest][:, :, nearest][:, :, :, nearest])
    for axis in (1, 2, 3):
        volumes = overlap_any(volumes, axis, resolution)
    return np.ascontiguousarray(volumes)


def is_whole_factor(size: int, resolution: int) -> bool:
    """Whether `resample` brings grids of edge `size` to `resolution` by a whole factor (or not at
    all): the data summary says so when it does not."""
    size = size + 2 if size == SHAPENETS_SIZE else size
    return resolution % size == 0 or size % resolution == 0


def overlap_any(volumes: np.ndarray, axis: int, resolution: int) -> np.ndarray:
    """`volumes` shrunk along `axis` to `resolution` cells: a cell is occupied if any source voxel
    it overlaps is (cell i spans [i * size / resolution, (i + 1) * size / resolution))."""
    size = volumes.shape[axis]
    starts = np.arange(resolution) * size // resolution
    ends = -(-(np.arange(1, resolution + 1) * size) // resolution)  # ceiling
    # reduceat over [start, end) needs increasing, non-overlapping starts: take the union of two
    # passes, one over each cell's first voxels and one ending at its last voxel
    first = np.logical_or.reduceat(volumes, starts, axis=axis)
    last = np.take(volumes, ends - 1, axis=axis)
    return first | last


# ---- orientation ------------------------------------------------------------------------------

FORMAT_UP_AXIS: dict[str, str] = {"binvox": "y", "npy": "z", "npz": "z", "mat": "z"}
"""The up axis `data.up_axis=auto` assumes for each format (see docs/data.md)."""

_TURNS: dict[str, tuple[int, tuple[int, int]]] = {
    # up axis: (quarter turns, (from axis, towards axis)) of a batch (N, X, Y, Z) that bring it to +z
    "z": (0, (1, 2)),
    "-z": (2, (2, 3)),  # half a turn about x
    "y": (1, (2, 3)),  # +y turns towards +z, about x
    "-y": (-1, (2, 3)),
    "x": (1, (1, 3)),  # +x turns towards +z, about y
    "-x": (-1, (1, 3)),
}


def up_axis_of(fmt: str, up_axis: str) -> str:
    """The up axis of a file in format `fmt` under the setting `up_axis` ('auto' or an axis)."""
    return FORMAT_UP_AXIS[fmt] if up_axis == "auto" else up_axis


def to_z_up(volumes: np.ndarray, up_axis: str) -> np.ndarray:
    """(N, D, D, D) volumes whose up axis is `up_axis`, turned so that up is +z (axis 3 of the batch)."""
    turns, axes = _TURNS[up_axis]
    return volumes if turns == 0 else np.ascontiguousarray(np.rot90(volumes, turns, axes=axes))
