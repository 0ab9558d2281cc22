"""What a trial is scored on: voxgan's metrics, turned into values an optimiser can minimise.

Each metric has an ideal point. `iou_1nna` and `c2st_acc` are ideal at 0.5 (a classifier cannot
tell generated from real); below 0.5 is as suspicious as above (the generator copies the training
set), so they enter as gaps, |x - 0.5| * 2, in [0, 1]. The single-objective `score` is the mean of
four terms in [0, 1], each 0 at the ideal:

    score = ( nna_gap + c2st_gap + iou_mmd + (1 - iou_cov) ) / 4        (lower is better)
"""

from __future__ import annotations

import math

DIRECTIONS = {
    "score": "minimize",
    "nna_gap": "minimize",
    "c2st_gap": "minimize",
    "iou_mmd": "minimize",
    "iou_cov": "maximize",
    "iou_1nna": "minimize",
    "c2st_acc": "minimize",
    "diversity": "maximize",
}
"""Objectives a study may declare, with their direction. Raw iou_1nna and c2st_acc are allowed
(minimising pushes them toward 0.5 from above, where untrained generators start) but the gaps
are the honest form."""


METRIC_KEYS = ("score", "iou_mmd", "iou_cov", "iou_1nna", "c2st_acc", "nna_gap", "c2st_gap", "diversity",
               "occupancy_ratio", "d_real", "d_fake", "g_loss", "d_loss", "samples_per_s")
"""What a trial reports at each evaluation and stores as Optuna user attributes."""


def derived(scores: dict[str, float]) -> dict[str, float]:
    """The metrics plus the gaps and the combined score; NaN in, NaN out (never a fake value)."""
    nna_gap = abs(scores["iou_1nna"] - 0.5) * 2
    c2st_gap = abs(scores["c2st_acc"] - 0.5) * 2
    score = (nna_gap + c2st_gap + scores["iou_mmd"] + (1 - scores["iou_cov"])) / 4
    return {**scores, "nna_gap": nna_gap, "c2st_gap": c2st_gap, "score": score}


def is_finite(values: list[float]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
