"""What a trial is scored on: voxgan's metrics, turned into values an optimiser can minimise.

Each metric has an ideal point. `iou_1nna` and `c2st_acc` are ideal at 0.5 (a classifier cannot
tell generated from real); below 0.5 is as suspicious as above (the generator copies the training
set), so they enter as gaps, |x - 0.5| * 2, in [0, 1]. The single-objective `score` is the mean of
six terms in [0, 1], each 0 at the ideal:

    score = ( nna_gap + c2st_gap + iou_mmd + (1 - iou_cov) + structure_gap + copy_gap ) / 6   (lower is better)

structure_gap (how much less whole the samples are than the real shapes: debris, fragments) sees
what the IoU metrics and a small classifier hardly do on small evaluation sets; copy_gap (how much more
often samples are near-copies of training shapes than test shapes are) keeps a generator that
replays its training set from scoring like real data.

The names and directions of all of them are in `voxgan.metric_table`.
"""

from __future__ import annotations

import math


def with_objectives(scores: dict[str, float]) -> dict[str, float]:
    """The metrics plus the gaps and the combined score; NaN in, NaN out (never a fake value)."""
    nna_gap = abs(scores["iou_1nna"] - 0.5) * 2
    c2st_gap = abs(scores["c2st_acc"] - 0.5) * 2
    score = (nna_gap + c2st_gap + scores["iou_mmd"] + (1 - scores["iou_cov"]) + scores["structure_gap"] + scores["copy_gap"]) / 6
    return {**scores, "nna_gap": nna_gap, "c2st_gap": c2st_gap, "score": score}


def is_finite(values: list[float]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
