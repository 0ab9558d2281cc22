"""Samples no amount of further training is worth spending on: empty, nearly full, or collapsed.

A search stops such a trial at its first evaluation, before the first ASHA rung, instead of
training it to the rung to learn what one look at its samples says. The thresholds are far from
the real shapes: on average they fill 3% (procedural shapes at 16^3, 3D ShapeNets chairs at
32^3) to 10% (ModelNet10 at 32^3) of the grid, and two of them share well under half their
voxels, while the cases caught here are mostly empty, fill more than half the grid, or are one
shape over and over.
"""

from __future__ import annotations

from voxgan import metrics
from voxgan.metrics import Volumes

EMPTY_OCCUPANCY = 0.001
"""A sample filling less than this share of the grid is as good as empty: 4 voxels at 16^3, 32 at
32^3 (the 1st percentile of ModelNet10's shapes at 32^3, the emptiest real set here, is 0.0011)."""
EMPTY_SHARE = 0.5
"""Degenerate when more than this share of the samples are (as good as) empty."""
FULL_OCCUPANCY = 0.5
"""... or when the samples fill more than this share of the grid on average."""
COLLAPSED_IOU = 0.9
"""... or when two samples share more than this IoU on average: one shape, drawn again and again."""


def degenerate_reason(samples: Volumes) -> str | None:
    """Why `samples` (N >= 2 shapes) are degenerate, in one line; None when they are not."""
    occupied = metrics.occupancy(samples).float().mean(dim=1).numpy()
    empty = float((occupied < EMPTY_OCCUPANCY).mean())
    if empty > EMPTY_SHARE:
        return f"degenerate samples: empty ({empty:.0%} of them fill under {EMPTY_OCCUPANCY:.1%} of the grid)"
    if occupied.mean() > FULL_OCCUPANCY:
        return f"degenerate samples: nearly full (they fill {occupied.mean():.0%} of the grid)"
    pairwise = 1.0 - metrics.diversity(samples)
    if pairwise > COLLAPSED_IOU:
        return f"degenerate samples: collapsed to one shape (mean IoU between samples {pairwise:.2f})"
    return None
