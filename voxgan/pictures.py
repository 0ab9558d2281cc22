"""PNG pictures of a run: grids of voxel renders and training curves.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend switch), so it
works headless and from several threads or processes at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from skimage.measure import block_reduce

from voxgan.metrics import THRESHOLD, as_bool

RENDER_MAX_RESOLUTION = 64
"""Volumes above this are max-pooled down before meshing: the picture is a preview."""
FACE_COLOR = np.array([0.30, 0.55, 0.75])
LIGHT = np.array([0.4, -0.5, 0.8]) / np.linalg.norm([0.4, -0.5, 0.8])

VIEW_ELEVATION = 20
VIEW_AZIMUTH = 130
"""Camera for every render. The up axis is the volume's last axis (3D ShapeNets stores chairs
with axis 2 pointing up: legs at low indices, the back at high ones), which is matplotlib's
vertical z axis when the array is passed unchanged, so shapes stand upright. Azimuth 130 looks
at the front of the rotation-1 chairs (seat and backrest face the camera), from slightly above."""
LABEL_STRIP_INCHES = 0.3  # room above the grid for the first row's label when there is no title


def as_volume_batch(volumes: np.ndarray | torch.Tensor, threshold: float) -> np.ndarray:
    """(N, R, R, R), (N, 1, R, R, R) or one (R, R, R) volume -> (N, R, R, R) bool numpy."""
    array = as_bool(volumes, threshold)
    if array.ndim == 5 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"expected volumes of shape (N, R, R, R), got shape {array.shape}")
    return array


def shrink_factor(shape: tuple[int, ...], max_resolution: int) -> int:
    """The integer factor `downsample_for_render` divides a volume of `shape` by: one coarse
    voxel spans this many fine ones per side."""
    return math.ceil(max(shape) / max_resolution)


def downsample_for_render(volume: np.ndarray, max_resolution: int = RENDER_MAX_RESOLUTION) -> np.ndarray:
    """Shrink a bool volume by an integer factor (`shrink_factor`) to at most `max_resolution` per
    side. A coarse voxel is filled when any of its fine voxels is, so thin parts (chair legs) stay
    visible."""
    factor = shrink_factor(volume.shape, max_resolution)
    return volume if factor == 1 else block_reduce(volume, factor, np.any, cval=False)


def render_grid(
    volumes: np.ndarray | torch.Tensor,
    path: str | Path,
    *,
    ncols: int = 4,
    threshold: float = THRESHOLD,
    title: str | None = None,
    row_labels: list[str] | None = None,
) -> Path:
    """Save a PNG grid of voxel renders, one cell per volume, row by row; `row_labels` names each
    row above its first cell (for sheets that put real shapes beside several generators).

    Each thresholded volume is drawn as its closed surface (the marching-cubes mesh that
    `voxgan.export` writes for printing) in one shaded polygon collection. matplotlib's
    `ax.voxels` draws a collection per voxel and took seconds per untrained sample, which made
    pictures the slowest part of a search trial. Every cell uses the same upright camera
    (`VIEW_ELEVATION`, `VIEW_AZIMUTH`) and shows the whole grid box, so sizes compare.
    """
    batch = as_volume_batch(volumes, threshold)
    ncols = max(1, min(ncols, len(batch)))
    nrows = max(1, math.ceil(len(batch) / ncols))
    # The title, or else the first row's label, needs a strip above the grid to be seen.
    strip = 0.4 if title else (LABEL_STRIP_INCHES if row_labels else 0.0)
    figure = Figure(figsize=(2.5 * ncols, 2.5 * nrows + strip), dpi=80)
    for index, volume in enumerate(batch):
        shown = downsample_for_render(volume)
        ax = figure.add_subplot(nrows, ncols, index + 1, projection="3d")
        _draw_surface(ax, shown)
        ax.set(xlim=(0, shown.shape[0]), ylim=(0, shown.shape[1]), zlim=(0, shown.shape[2]))
        ax.set_box_aspect((1, 1, 1), zoom=1.3)
        ax.view_init(elev=VIEW_ELEVATION, azim=VIEW_AZIMUTH)
        ax.set_axis_off()
        if row_labels and index % ncols == 0 and index // ncols < len(row_labels):
            ax.set_title(row_labels[index // ncols], loc="left", fontsize=10)
    if title:
        figure.suptitle(title)
    top = 0.92 if title else 1 - strip / figure.get_figheight()
    figure.subplots_adjust(left=0, right=1, bottom=0, top=top, wspace=0, hspace=0)
    return _save(figure, path)


def _draw_surface(ax, volume: np.ndarray) -> None:
    """The volume's surface as Lambert-shaded triangles (an empty volume leaves an empty box)."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from voxgan.export import voxels_to_mesh

    if not volume.any():
        return
    vertices, faces = voxels_to_mesh(volume)
    triangles = vertices[faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    shade = 0.35 + 0.65 * np.clip(normals @ LIGHT, 0, 1)
    ax.add_collection3d(Poly3DCollection(triangles, facecolors=shade[:, None] * FACE_COLOR, linewidths=0))


def plot_curves(
    history: Sequence[dict[str, float]],
    path: str | Path,
    keys: Sequence[str] = ("g_loss", "d_loss"),
) -> Path:
    """Save a PNG of per-epoch training curves against the rows' "epoch" values.

    The first panel draws `keys`; a second panel draws the discriminator's mean outputs on real
    and generated shapes when the rows carry "d_real"/"d_fake" (D(x) and D(G(z)): they show
    which network is winning, which the losses alone hide). Missing or NaN values leave gaps.
    """
    panels = [list(keys)]
    discriminator_keys = [key for key in ("d_real", "d_fake") if any(key in row for row in history)]
    if discriminator_keys:
        panels.append(discriminator_keys)
    figure = Figure(figsize=(6.5, 3.0 * len(panels)), dpi=100)
    epochs = [row.get("epoch", float("nan")) for row in history]
    labels = {"d_real": "D(x)", "d_fake": "D(G(z))"}
    for index, panel_keys in enumerate(panels):
        ax = figure.add_subplot(len(panels), 1, index + 1)
        for key in panel_keys:
            values = [float(row.get(key, float("nan"))) for row in history]
            ax.plot(epochs, values, marker=".", markersize=3, label=labels.get(key, key))
        ax.set_ylabel("mean output" if panel_keys == discriminator_keys else "loss")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("epoch")
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def plot_confusion(confusion: Sequence[Sequence[int]], names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """A PNG of a probe's confusion matrix (rows: true class, columns: predicted), counts in the
    cells, drawn by scikit-learn's ConfusionMatrixDisplay (imported here: only the probe needs it)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 2.5 + 0.55 * len(names)
    figure = Figure(figsize=(size, size), dpi=100)
    ax = figure.add_subplot()
    ConfusionMatrixDisplay(np.asarray(confusion), display_labels=list(names)).plot(
        ax=ax, xticks_rotation=45, colorbar=False, cmap="Blues")
    ax.set_title(title, fontsize="medium")
    figure.tight_layout()
    return _save(figure, path)
