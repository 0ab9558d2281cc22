"""The trial record's report survives the trip through Ray's result dict, and each table keyed by
the config's names covers exactly those names."""

import math
from typing import get_args

import torch
from torch import nn

from voxgan.config import Family, NetConfig, OptimizerName
from voxgan.data.procedural import BUILDERS, FAMILIES
from voxgan.metric_table import REPORTED
from voxgan.models import OPTIMIZERS, configure_optimizer, optimizers_using
from voxgan_search.records.trial_record import Report, Status


def test_an_evaluation_report_round_trips_through_a_ray_result():
    metrics = {name: float(i) / 10 for i, name in enumerate(REPORTED)}
    report = Report(Status.FINISHED, metrics, kimg=4.0, epoch=11, start_kimg=0.0, node_id="n1", hostname="h")
    result = report.as_result()
    assert result["status"] == "finished" and result["kimg"] == 4.0 and result["score"] == metrics["score"]
    assert "reason" not in result and "traceback" not in result
    ray_result = {**result, "training_iteration": 3, "time_total_s": 1.5, "checkpoint_dir_name": "checkpoint_000002"}
    assert Report.from_result(ray_result) == report


def test_a_failure_reports_a_nan_score_and_its_reason():
    result = Report.failed(Status.DIVERGED, "diverged at epoch 3: loss is not finite", epoch=3, kimg=1.2).as_result()
    assert result["status"] == "diverged" and math.isnan(result["score"]) and result["epoch"] == 3
    back = Report.from_result(result)
    assert not back.status.evaluated and back.reason.startswith("diverged at epoch 3") and math.isnan(back.score)


def test_a_result_without_a_status_is_not_a_report():
    assert Report.from_result({"training_iteration": 1}) is None
    assert Report.from_result({"status": "unheard of"}) is None
    assert [s.evaluated for s in Status] == [True, True, False, False]


def test_every_optimizer_a_config_may_name_is_built_with_its_keys():
    assert set(OPTIMIZERS) == set(get_args(OptimizerName))
    model = nn.Linear(3, 2)
    for name in OPTIMIZERS:
        net = NetConfig(optimizer=name, lr=0.01, beta1=0.3, momentum=0.7, alpha=0.8)
        optimizer = configure_optimizer(model, net, torch.device("cpu"))
        group = optimizer.param_groups[0]
        assert isinstance(optimizer, OPTIMIZERS[name][0]) and group["lr"] == 0.01
        if "betas" in group:
            assert group["betas"] == (0.3, 0.999)
        if name in optimizers_using("momentum"):
            assert group["momentum"] == 0.7
    assert optimizers_using("beta1") == ("adam", "adamw") and optimizers_using("alpha") == ("rmsprop", "adadelta")
    assert OPTIMIZERS["adadelta"][1] == {"rho": "alpha"}


def test_every_family_the_config_admits_has_a_builder():
    assert set(BUILDERS) == set(get_args(Family)) == set(FAMILIES)
