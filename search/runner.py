"""Run (or resume) a study: Optuna samples, Ray Tune schedules, the Optuna storage records.

The Optuna storage is the source of truth. A new run creates the study and enqueues the tutorial
baseline; `--resume` re-attaches the trials an interrupted driver left RUNNING (they continue from
their last checkpoint) and asks only for the trials still missing, so a study ends with exactly
`--trials` trials, none run twice. Each run is a fresh Ray Tune experiment in `<out>/ray/`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search import processes
from search.storage import DB_NAME, artifact_store_for, connect, create_or_load, storage_url
from search.study import StudySpec
from voxgan.data import load_dataset
from voxgan.errors import VoxganError

DEFAULT_TRIALS = 20


@dataclass
class SearchSettings:
    """The command line's choices, with the study file's defaults filled in."""

    trials: int
    out: Path
    storage: str | None
    resume: bool
    max_concurrent: int | None
    cpus_per_trial: float
    gpus_per_trial: float
    address: str | None
    time_budget: float | None
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace, spec: StudySpec) -> SearchSettings:
        settings = cls(
            trials=DEFAULT_TRIALS if args.trials is None else args.trials,
            out=args.out or Path("runs") / spec.name,
            storage=args.storage,
            resume=args.resume,
            max_concurrent=args.max_concurrent if args.max_concurrent is not None else spec.resources.max_concurrent,
            cpus_per_trial=args.cpus_per_trial if args.cpus_per_trial is not None else spec.resources.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial if args.gpus_per_trial is not None else spec.resources.gpus_per_trial,
            address=args.address,
            time_budget=args.time_budget,
            quiet=args.quiet,
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.trials < 1:
            raise VoxganError("--trials must be at least 1")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise VoxganError("--max-concurrent must be at least 1")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise VoxganError("--cpus-per-trial must be above 0 and --gpus-per-trial at least 0")
        if self.time_budget is not None and self.time_budget <= 0:
            raise VoxganError("--time-budget must be a positive number of seconds")
        if self.address is None:
            check_local_resources(self.cpus_per_trial, self.gpus_per_trial)


def check_local_resources(cpus: float, gpus: float) -> None:
    """Refuse up front what would leave trials pending forever on this machine."""
    import torch

    if gpus > 0 and torch.cuda.device_count() == 0:
        raise VoxganError(f"--gpus-per-trial {gpus:g} asks for GPUs, but this machine has none (use --gpus-per-trial 0)")
    if gpus > torch.cuda.device_count():
        raise VoxganError(f"--gpus-per-trial {gpus:g} is more than the {torch.cuda.device_count()} GPU(s) here")
    if cpus > (os.cpu_count() or 1):
        raise VoxganError(f"--cpus-per-trial {cpus:g} is more than the {os.cpu_count()} CPUs here")


def run_search(spec: StudySpec, settings: SearchSettings) -> dict:
    """Run the study to `settings.trials` trials and return its summary (best vs baseline).

    Everything a user can get wrong (the folder, the data, the storage, the study's objectives)
    is checked before anything is written, so a refused run leaves no folder or SQLite file."""
    out = settings.out
    default_db = settings.storage is None and (out / DB_NAME).is_file()
    if not settings.resume and default_db:
        raise VoxganError(f"{out}: a study is already here; use --resume to continue it, or another --out")
    if settings.resume and settings.storage is None and not default_db:
        raise VoxganError(f"--resume: no study in {out} ({DB_NAME} not found); give the interrupted search's --out")
    data = load_dataset(spec.data)  # once per search; the trials share it through the object store
    if settings.storage is None:
        out.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    storage = connect(storage_url(settings.storage, out))
    study, created = create_or_load(storage, spec.name, spec.directions, spec.objectives, None, settings.resume)

    # Imported only once the input is accepted: they load Ray, and matplotlib, which writes its
    # font cache under $HOME.
    quiet_ray()
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.progress import ProgressPrinter, best_score_so_far
    from search.results import summary
    from search.searcher import StudySearcher, enqueue_baseline, stale_running_trials
    from search.trainable import train_trial

    # A resumed study must not replay the same random start: the seed moves with the trial count.
    study.sampler = make_sampler(spec, seed=spec.seed + len(study.get_trials(deepcopy=False)))
    out.mkdir(parents=True, exist_ok=True)
    if created:
        enqueue_baseline(study, spec)
    processes.stop_leftovers(out)
    to_resume = stale_running_trials(study)
    started = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    new_trials = max(0, settings.trials - len(started))
    if not settings.quiet:
        print(f"study '{spec.name}' in {out}: {len(started)} trials so far ({len(to_resume)} to continue), "
              f"{new_trials} to run", file=sys.stderr)
    if new_trials + len(to_resume) == 0:
        return summary(study)

    ray.init(address=settings.address or "local", include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="ERROR", num_cpus=None if settings.address else os.cpu_count())
    try:
        processes.record(out)
        check_cluster_resources(settings)
        experiment = f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        ray_dir = (out / "ray").resolve()
        searcher = StudySearcher(spec, study, storage, ray_dir / experiment, artifact_store_for(out), to_resume)
        scheduler = (ASHAScheduler(metric="score", mode="min", time_attr="epoch", max_t=spec.budget.max_epochs,
                                   grace_period=spec.budget.grace_epochs or spec.budget.eval_every,
                                   reduction_factor=spec.budget.reduction_factor)
                     if spec.scheduler == "asha" else FIFOScheduler())
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, data=data, max_epochs=spec.budget.max_epochs,
                                 eval_every=spec.budget.eval_every, threads=max(1, int(settings.cpus_per_trial))),
            {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher, scheduler=scheduler, num_samples=new_trials + len(to_resume),
                max_concurrent_trials=settings.max_concurrent, time_budget_s=settings.time_budget,
                trial_dirname_creator=lambda trial: trial.trial_id, reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=experiment, storage_path=str(ray_dir), verbose=0,
                callbacks=[ProgressPrinter(spec, quiet=settings.quiet, best=best_score_so_far(study))],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        with terminate_as_interrupt():
            tuner.fit()
        if left := stale_running_trials(study):
            # Tune catches SIGINT and returns from fit() as if the study were done; the trials it
            # stopped stay RUNNING. Exit as interrupted, not with a summary that looks final.
            raise KeyboardInterrupt(f"{len(left)} trial(s) left RUNNING; `--resume` with the same flags continues them")
    finally:
        ray.shutdown()
        processes.forget(out)
    return summary(study)


def make_sampler(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    """TPE that models parameters jointly and, with trials in flight, assumes the worst for them
    (constant liar) so that parallel trials do not all sample the same region."""
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def quiet_ray() -> None:
    """Ray's defaults print wide boxes for every result and a token notice; this harness prints
    its own one-line progress, so Ray's output engine is put into its silent legacy mode."""
    for key, value in {"RAY_AIR_NEW_OUTPUT": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                       "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
                       "RAY_DEDUP_LOGS": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0"}.items():
        os.environ.setdefault(key, value)


def check_cluster_resources(settings: SearchSettings) -> None:
    """On a cluster, the same refusal as locally: GPUs asked for where there are none."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if settings.gpus_per_trial > 0 and gpus == 0:
        raise VoxganError(f"--gpus-per-trial {settings.gpus_per_trial:g} asks for GPUs, but the Ray cluster has none")


class terminate_as_interrupt:
    """SIGTERM is handled like Ctrl-C: Ray Tune stops its trials and the driver exits cleanly,
    leaving in-flight trials RUNNING in the study for `--resume` to continue."""

    def __enter__(self) -> None:
        self._previous = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)


__all__ = ["SearchSettings", "run_search", "json"]
