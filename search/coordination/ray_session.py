"""The Ray cluster of one run: started quiet, its processes recorded, SIGTERM taken as Ctrl-C.

`ray.init()` starts a local cluster (or joins `--address`). Its process ids are recorded in the
output folder while it runs, so that the next run there can end what a SIGKILLed driver left
behind (`voxgan_search.coordination.processes`). SIGTERM is handled like Ctrl-C: Ray Tune stops its trials and the
driver exits cleanly, leaving in-flight trials RUNNING in the study for `--resume`.
"""

from __future__ import annotations

import logging
import os
import signal
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
