"""Telling a live driver from a dead one, and an abandoned trial from one another driver runs,
on a real SQLite study with real driver records and real processes."""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from voxgan_search.records.trial_record import OWNER_ATTR
from voxgan_search.coordination.drivers import GRACE_S, Driver, abandoned_trials, is_live, live_drivers, machine, owned_running
from voxgan_search.coordination.processes import start_time
from voxgan_search.coordination.storage import connect


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name="s", storage=connect(f"sqlite:///{tmp_path / 's.db'}"))


def register(study: optuna.Study, driver: Driver, **changes) -> None:
    study.set_user_attr(f"driver {driver.id}", {**driver.record(), **changes})


def dead_process() -> Driver:
    """A driver whose process has ended (its id cannot belong to another process: same start time)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    driver = Driver(machine(), proc.pid, start_time(proc.pid))
    proc.wait()
    return driver


def test_liveness_on_this_machine_is_the_process_itself():
    me = Driver.this_process()
    assert is_live(me.record(), machine(), time.time())
    assert not is_live(me.record(stopped=True), machine(), time.time())
    # A killed driver is dead at once, however recent its last beat.
    assert not is_live(dead_process().record(), machine(), time.time())


def test_a_driver_on_another_machine_is_live_until_its_beats_stop():
    elsewhere = Driver("other-host/boot/pid:[1]", 4242, "123").record()
    assert is_live(elsewhere, machine(), elsewhere["beat"] + GRACE_S - 1)
    assert not is_live(elsewhere, machine(), elsewhere["beat"] + GRACE_S + 1)


def test_running_trials_of_a_live_driver_are_not_abandoned(study):
    me, other, dead = Driver.this_process(), Driver("other-host/b/p", 7, "1"), dead_process()
    register(study, me)
    mine, others, orphan = study.ask(), study.ask(), study.ask()
    mine.set_user_attr(OWNER_ATTR, me.id)
    others.set_user_attr(OWNER_ATTR, other.id)
    orphan.set_user_attr(OWNER_ATTR, dead.id)
    study.tell(study.ask(), 1.0)
    register(study, dead)
    assert live_drivers(study) == {me.id}
    assert abandoned_trials(study, me.id) == [others.number, orphan.number]  # the other driver never registered
    assert owned_running(study, me.id) == [mine.number]

    register(study, other)  # now it beats: its trial is its own, and only a driver alone continues any
    assert live_drivers(study) == {me.id, other.id}
    assert abandoned_trials(study, me.id) == []
    register(study, other, beat=time.time() - GRACE_S - 1)
    assert abandoned_trials(study, me.id) == [others.number, orphan.number]
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 3
