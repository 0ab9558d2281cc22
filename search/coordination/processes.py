"""The Ray processes of this search, recorded so that a killed driver's leftovers can be ended.

`ray.init()` starts a local cluster (GCS server, raylet, workers). If the driver is killed with
SIGKILL, nothing shuts them down. Their process ids are written to `<out>/ray-processes.json`
while the search runs; the next run in the same folder ends those still alive (and only those:
other Ray clusters on the machine are left alone).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil

from voxgan.errors import VoxganError

RECORD = "ray-processes.json"


def descendants(pid: int) -> list[int]:
    """Direct and indirect children of a process (none when it is gone)."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def record(out: Path) -> None:
    """Write the ids and start times of this search's Ray processes (the driver's descendants);
    the start time tells a recorded process from a later one that reuses its id."""
    me = os.getpid()
    pids = {pid: start_time(pid) for pid in descendants(me)}
    (out / RECORD).write_text(json.dumps({"driver": [me, start_time(me)], "pids": list(pids.items())}))


def forget(out: Path) -> None:
    (out / RECORD).unlink(missing_ok=True)


def start_time(pid: int) -> str | None:
    """The process's start time (seconds since the epoch, as text), None for no such process."""
    try:
        return repr(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def running(pid: int, start: str | None) -> bool:
    """Whether process `pid` still runs and is the one that started at `start` (not a later
    process that reuses its id)."""
    return start is not None and start_time(pid) == start


def stop_leftovers(out: Path) -> list[int]:
    """End the recorded processes of a previous driver of this folder that are still alive and no
    longer have that driver (it was killed). Returns the ids ended."""
    path = out / RECORD
    if not path.is_file():
        return []
    saved = json.loads(path.read_text())
    driver, driver_start = saved["driver"]
    if running(driver, driver_start):
        raise VoxganError(f"{out}: another voxgan-search (pid {driver}) is running this study")
    alive = [pid for pid, start in saved["pids"] if running(pid, start)]
    ended = []
    for pid in alive + [kid for pid in alive for kid in descendants(pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
            ended.append(pid)
        except ProcessLookupError:
            pass
    path.unlink(missing_ok=True)
    return ended
