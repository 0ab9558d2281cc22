"""The metric table is the one list of metric names: what the trainer logs and the scorer adds is
registered there, so a new metric cannot be logged or optimised without its entry."""

from dataclasses import fields

import pytest

from voxgan.metrics import with_score
from voxgan.metric_table import BY_NAME, OBJECTIVES, PER_EPOCH, REPORTED
from voxgan.trainer import EpochStats


def test_the_trainers_epoch_stats_are_registered():
    stats = {f.name for f in fields(EpochStats)} - {"epoch", "seconds"}
    assert stats - set(BY_NAME) == set()
    assert {"g_loss", "d_loss", "samples_per_s"} <= set(PER_EPOCH)


def test_objectives_are_what_the_scorer_computes():
    scores = with_score({"iou_1nna": 0.7, "c2st_acc": 0.6, "iou_mmd": 0.2, "iou_cov": 0.5, "diversity": 0.3,
                        "part_share": 0.9, "structure_gap": 0.1, "copy_gap": 0.3})
    assert set(OBJECTIVES) - set(scores) == {"probe_acc"}  # the probe's, where eval.probe is on
    assert scores["score"] == pytest.approx((0.4 + 0.2 + 0.2 + 0.5 + 0.1 + 0.3) / 6)
    assert set(REPORTED) <= set(BY_NAME)
