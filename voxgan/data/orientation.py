"""Turning shapes so that they stand along z, whatever axis their files call up.

voxgan stores every shape z-up (axis 2), as the 3D ShapeNets chairs are: the networks, the
renders and the metrics all assume it. Formats disagree: ShapeNetCore's .binvox files are y-up,
most arrays (.npy/.npz, ModelNet, 3D ShapeNets .mat) are z-up. `data.up_axis=auto` uses each
format's convention below; any other value names the up axis of every file of the source.
Turns are proper rotations by 90 or 180 degrees (np.rot90), never mirror images, so a chair's
left and right stay where they were.
"""

from __future__ import annotations

import numpy as np

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
