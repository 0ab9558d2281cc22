"""Every metric voxgan logs, reports or optimises, declared once: its name, direction and label.

The trainer's logs (losses.csv, TensorBoard), the search's trials (what a trial reports and stores
as Optuna user attributes), the objectives a study may declare, the summary table and the
seed-spread tool all read this table, so adding a metric is one entry here (plus the code that
computes it). This module imports neither Ray nor Optuna: the trainer uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["minimize", "maximize"]


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction | None
    """Which way is better; None for values that are only watched (losses, speed)."""
    label: str = ""
    """Its row in the search summary (empty: not a summary row)."""
    objective: bool = False
    """A study may optimise it (`objectives: [...]`)."""
    per_epoch: bool = False
    """The trainer logs it every epoch (losses.csv and TensorBoard's `train/` scalars)."""
    reported: bool = True
    """A search trial reports it at each evaluation and stores it as a user attribute."""
    short: str = ""
    """Its name in a search's live progress lines (empty: not shown there)."""
    of_samples: bool = True
    """It measures generated shapes (False: it measures D, or is only watched)."""


METRICS: tuple[Metric, ...] = (
    Metric("score", "minimize", "score (lower is better)", objective=True, short="score"),
    Metric("score_se", None, "  its standard error", of_samples=False),  # voxgan.scoring's bootstrap
    Metric("iou_1nna", "minimize", "1-NNA (0.5 ideal)", objective=True, short="1-NNA"),
    Metric("c2st_acc", "minimize", "C2ST accuracy (0.5 ideal)", objective=True, short="C2ST"),
    Metric("iou_mmd", "minimize", "MMD, 1 - IoU (lower)", objective=True, short="MMD"),
    Metric("iou_cov", "maximize", "COV (higher)", objective=True, short="COV"),
    Metric("diversity", "maximize", "diversity", objective=True),
    Metric("occupancy_ratio", None, "occupancy ratio (1 ideal)"),
    Metric("part_share", "maximize", "largest-part share (real 1)", objective=True),
    Metric("whole_share", "maximize", "whole samples (real 1)"),
    Metric("copy_share", "minimize", "copies of train shapes"),
    Metric("copy_share_real", None, "  the same by chance"),
    Metric("d_real", None, "D(x)", per_epoch=True, of_samples=False),
    Metric("d_fake", None, "D(G(z))", per_epoch=True, of_samples=False),
    Metric("probe_acc", "maximize", "probe accuracy (D's features)", objective=True, short="probe", of_samples=False),
    Metric("probe_s", None, of_samples=False),  # seconds the probe took at this evaluation
    Metric("nna_gap", "minimize", objective=True),
    Metric("c2st_gap", "minimize", objective=True),
    Metric("structure_gap", "minimize", objective=True),
    Metric("copy_gap", "minimize", objective=True),
    Metric("g_loss", None, per_epoch=True),
    Metric("d_loss", None, per_epoch=True),
    Metric("d_acc", None, per_epoch=True, reported=False),
    Metric("d_updates", None, per_epoch=True, reported=False),  # the share of iterations that updated D
    Metric("samples_per_s", None, per_epoch=True),
    Metric("kimg", None, per_epoch=True, reported=False),  # thousands of training shapes shown so far
)
"""Raw iou_1nna and c2st_acc are allowed as objectives (minimising pushes them toward 0.5 from
above, where untrained generators start), but the gaps are the honest form. d_real and d_fake
are training means per epoch in the trainer's logs and the trained D on held-out shapes in a
trial's report. probe_acc (voxgan.probe) is measured only where eval.probe is on (labelled
data): the test accuracy of a linear SVM on D's features, the 3D-GAN paper's Table 1."""

BY_NAME = {metric.name: metric for metric in METRICS}
OBJECTIVES: dict[str, Direction] = {m.name: m.direction for m in METRICS if m.objective and m.direction}
"""Objectives a study may declare, with their direction."""
REPORTED = tuple(m.name for m in METRICS if m.reported)
"""What a trial reports at each evaluation and stores as Optuna user attributes."""
PER_EPOCH = tuple(m.name for m in METRICS if m.per_epoch)
"""What the trainer's logs chart per epoch."""
SUMMARY_ROWS = tuple((m.name, m.label) for m in METRICS if m.label)
"""The search summary's rows, in order."""
PROGRESS = tuple((m.name, m.short) for m in METRICS if m.short)
"""What a search's progress line shows of each evaluation, in order."""
SAMPLE_METRICS = tuple(m.name for m in METRICS if m.label and m.of_samples)
"""The summary's measures of the samples themselves (not of D): what seed_spread compares."""
