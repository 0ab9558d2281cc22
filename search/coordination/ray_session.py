"""The Ray cluster of one run: started quiet, its processes recorded, SIGTERM taken as Ctrl-C.

`ray.init()` starts a local cluster (or joins `--address`). Its process ids are recorded in the
output folder while it runs, so that the next run there can end what a SIGKILLed driver left
behind (`voxgan_search.coordination.processes`). SIGTERM is handled like Ctrl-C: Ray Tune stops its trials and the
driver exits cleanly, leaving in-flight trials RUNNING in the study for `--resume`.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voxgan_search.coordination import processes
from voxgan.errors import VoxganError

QUIET_RAY = {
    "RAY_AIR_NEW_OUTPUT": "0",  # Ray's wide per-result boxes: the harness prints its own lines
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # Ray's own json/csv/TensorBoard copies of every result
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # a crashed trial is a FAIL with its reason, not a traceback here
}


def quiet_ray() -> None:
    """Ray's output and bookkeeping the harness does not use, switched off (before Ray is imported)."""
    for key, value in QUIET_RAY.items():
        os.environ.setdefault(key, value)


# Ray Tune writes its driver state by a temporary file renamed into place (`.<uuid>-<name>`) and
# copies that folder to the storage path in a background thread; a save during a copy makes the
# copy miss the renamed file. The copy that follows carries the new state.
RENAMED_TEMPORARY = re.compile(r"Failed to open local file '[^']*/\.[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}-[^'/]*'")
RAY_STATE_COPIERS = ("ray.tune.execution.experiment_state", "ray.train._internal.syncer")


class SkipRenamedTemporaryCopy(logging.Filter):
    """Drops Ray's traceback for a driver-state copy that raced one of Ray's own saves (above):
    the harness keeps its state in the study, and a newer copy follows; any other copy failure
    still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        return RENAMED_TEMPORARY.search(text) is None


SKIP_RENAMED_TEMPORARY_COPY = SkipRenamedTemporaryCopy()  # one instance: a logger keeps a filter once


def skip_renamed_temporary_copies() -> None:
    """Ray's loggers that report a failed driver-state copy, filtered (`SkipRenamedTemporaryCopy`)."""
    for name in RAY_STATE_COPIERS:
        logging.getLogger(name).addFilter(SKIP_RENAMED_TEMPORARY_COPY)


@contextmanager
def ray_session(out: Path, address: str | None, gpus_per_trial: float) -> Iterator[None]:
    """A started Ray cluster for the `with` block; shut down and forgotten after it."""
    import ray

    processes.stop_leftovers(out)
    ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="ERROR", num_cpus=None if address else os.cpu_count())
    # Its closing "Trials did not complete: [train_trial_<id>]" names Ray's ids; the summary counts
    # the FAILed trials, and each one's fail_reason says why.
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)
    skip_renamed_temporary_copies()
    previous = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        processes.record(out)
        if gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) == 0:
            raise VoxganError(f"--gpus-per-trial {gpus_per_trial:g} asks for GPUs, but the Ray cluster has none")
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray.shutdown()
        processes.forget(out)
