"""Which `voxgan-search` drivers are alive on a study, and which RUNNING trials no live driver owns.

Several drivers may share one study (an RDB storage such as PostgreSQL). Each registers a record
in the study's user attributes (`driver <id>`) before it reads or takes any trial, renews its
`beat` every `BEAT_S` seconds from a thread, and marks it `stopped` when it exits. Each trial a
driver runs names it in the trial's `driver` user attribute.

A driver is live when its record is not stopped and: on the same machine, its process still runs
(exact: a SIGKILLed driver is dead at once); on another machine, its last beat is less than
`GRACE_S` old (so the machines' clocks must agree to within that, as NTP keeps them).

Optuna's own heartbeat (`RDBStorage(heartbeat_interval=...)`) can only fail a stale trial
(`fail_stale_trials`), which would lose its checkpoint and add a trial to the study; reading its
beats needs a private method. These records are read with public APIs alone.

A trial is abandoned when it is RUNNING and no live driver owns it. Only a driver that is alone
on the study (no other live driver) continues abandoned trials: each driver writes its record
before it reads the others', so of two drivers starting at once at least one sees the other, and
never do both continue the same trial.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from voxgan_search.coordination.processes import running, start_time
from voxgan_search.records.trial_record import DRIVER_RECORD_PREFIX, OWNER_ATTR
BEAT_S = 10.0
GRACE_S = 60.0


def machine() -> str:
    """This machine and process namespace: where a process id means the same process. The host
    name alone is not enough (containers may share one, or one host run several namespaces)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        boot, namespace = "", ""
    return f"{socket.gethostname()}/{boot}/{namespace}"


@dataclass(frozen=True)
class Driver:
    """One run of `voxgan-search`, named so that another process can tell whether it still runs."""

    machine: str
    pid: int
    start: str | None
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    """Tells two runs of one process apart (the CLI called twice in-process): each owns its trials."""

    @classmethod
    def this_process(cls) -> Driver:
        return cls(machine(), os.getpid(), start_time(os.getpid()))

    @property
    def id(self) -> str:
        return f"{self.machine.split('/')[0]}:{self.pid}:{self.start}:{self.run}"

    @property
    def seed_offset(self) -> int:
        """A number of its own, so that two drivers of one study do not sample the same points."""
        return zlib.crc32(f"{self.machine}:{self.id}".encode()) % 1_000_000

    def record(self, stopped: bool = False) -> dict:
        return {"machine": self.machine, "pid": self.pid, "start": self.start, "beat": time.time(), "stopped": stopped}

    def write(self, storage: optuna.storages.BaseStorage, study_id: int, stopped: bool = False) -> None:
        storage.set_study_user_attr(study_id, DRIVER_RECORD_PREFIX + self.id, self.record(stopped))


def is_live(record: dict, here: str, now: float) -> bool:
    """Whether the driver of `record` may still be running its trials (see the module's docstring)."""
    if record.get("stopped"):
        return False
    if record.get("machine") == here:
        return running(record["pid"], record.get("start"))
    return now - record.get("beat", 0.0) < GRACE_S


def live_drivers(study: optuna.Study) -> set[str]:
    """Ids of the live drivers of the study, read fresh from the storage."""
    here, now = machine(), time.time()
    attrs = study.user_attrs  # a fresh read each time
    return {key[len(DRIVER_RECORD_PREFIX):] for key, record in attrs.items()
            if key.startswith(DRIVER_RECORD_PREFIX) and isinstance(record, dict) and is_live(record, here, now)}


def others_live(study: optuna.Study, me: str | None) -> bool:
    return bool(live_drivers(study) - {me})


def abandoned_trials(study: optuna.Study, me: str | None = None) -> list[int]:
    """Numbers of the RUNNING trials no live driver owns, in order; none while a driver other
    than `me` is live (it may own a trial it has not yet named itself on, or continue these)."""
    live = live_drivers(study)
    if live - {me}:
        return []
    running_trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t.number for t in running_trials if t.user_attrs.get(OWNER_ATTR) not in live]


def owned_running(study: optuna.Study, me: str) -> list[int]:
    """Numbers of the RUNNING trials `me` owns."""
    running_trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t.number for t in running_trials if t.user_attrs.get(OWNER_ATTR) == me]


class Heartbeat:
    """The driver's record, written now, renewed from a thread, and marked stopped on exit."""

    def __init__(self, driver: Driver, study: optuna.Study, storage: optuna.storages.BaseStorage):
        self.driver = driver
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.beat, name="voxgan-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.driver.write(self.storage, self.study_id)
        self.thread.start()
        return self

    def beat(self) -> None:
        while not self.done.wait(BEAT_S):
            try:
                self.driver.write(self.storage, self.study_id)
            except Exception:  # a storage hiccup: the next beat tries again; GRACE_S spans several
                pass

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        self.driver.write(self.storage, self.study_id, stopped=True)
