"""A study's budget: ASHA's rungs as Ray Tune places them, and evaluations at each of them."""

import re

import pytest
from ray.tune.schedulers import ASHAScheduler

from voxgan_search.study.spec import Budget


@pytest.mark.parametrize("budget, rungs", [
    ({"kimg": 12, "eval_every_kimg": 1}, [1, 3, 9]),
    ({"kimg": 12, "eval_every_kimg": 1, "grace_kimg": 0.5, "reduction_factor": 4}, [0.5, 2, 8]),
    ({"kimg": 16, "eval_every_kimg": 2, "grace_kimg": 0.5, "reduction_factor": 3}, [0.5, 1.5, 4.5, 13.5]),
    ({"kimg": 9, "eval_every_kimg": 1}, [1, 3, 9]),
])
def test_rungs_are_the_ones_ray_tunes_asha_stops_at(budget, rungs):
    spec = Budget(**budget)
    scheduler = ASHAScheduler(metric="score", mode="min", time_attr="kimg", max_t=spec.kimg,
                              grace_period=spec.grace,
                              reduction_factor=spec.reduction_factor)
    ray_rungs = sorted(float(x) for x in re.findall(r"Iter ([\d.]+)", scheduler.debug_string()))
    assert spec.rungs() == pytest.approx(rungs) == ray_rungs


def test_a_trial_is_evaluated_at_each_rung_between_its_regular_evaluations():
    spec = Budget(kimg=12, eval_every_kimg=1, grace_kimg=0.5, reduction_factor=3)
    assert spec.marks() == [0.5, 1, 1.5, 2, 3, 4, 4.5, 5, 6, 7, 8, 9, 10, 11, 12]
    assert Budget(kimg=12, eval_every_kimg=1).marks() == list(range(1, 13))
