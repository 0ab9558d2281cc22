"""The Ray Tune experiment of one run: the trainable with its resources, the scheduler, the
searcher on the study, and the progress printer."""

from __future__ import annotations

import functools
import math
import os
import random
import time
from pathlib import Path

import numpy as np
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from voxgan_search.tuning.checkpoint_store import join
from voxgan_search.coordination.drivers import Driver
from voxgan_search.coordination.opening import OpenedStudy
from voxgan_search.tuning.progress import ProgressPrinter, best_finished_score, best_score_so_far
from voxgan_search.records.searcher import Deadline, StudySearcher
from voxgan_search.coordination.storage import artifact_store_for
from voxgan_search.study.spec import StudySpec
from voxgan_search.tuning.trainable import train_trial
from voxgan.data import VoxelDataset


def make_scheduler(spec: StudySpec) -> TrialScheduler:
    """ASHA stops poor trials at its rungs (by the combined score, whatever the objectives); FIFO never."""
    if spec.scheduler != "asha":
        return FIFOScheduler()
    return ASHAScheduler(metric="score", mode="min", time_attr="kimg", max_t=spec.budget.kimg,
                         grace_period=spec.budget.grace,
                         reduction_factor=spec.budget.reduction_factor)


def whole_share(available: float, per_trial: float) -> int:
    """How many trials of `per_trial` fit in `available`, robust to binary fractions: 1 // 0.1 is
    9.0 in floating point, while ten trials of 0.1 GPU fit on one GPU (Ray counts in 1/10000ths)."""
    return math.floor(round(available / per_trial, 4))


def trials_at_once(cpus_per_trial: float, gpus_per_trial: float, max_concurrent: int | None) -> int:
    """How many trials the Ray cluster can run at once, capped by --max-concurrent."""
    import ray

    resources = ray.cluster_resources()
    slots = whole_share(resources.get("CPU", 1), cpus_per_trial)
    if gpus_per_trial > 0:
        slots = min(slots, whole_share(resources.get("GPU", 0), gpus_per_trial))
    return max(1, min(slots, max_concurrent or slots))


def build_tuner(spec: StudySpec, opened: OpenedStudy, driver: Driver, data: VoxelDataset, out: Path,
                storage_path: str, cpus_per_trial: float, gpus_per_trial: float, max_concurrent: int | None,
                deadline: Deadline, quiet: bool, confirmation: bool = False,
                resume: list[int] | None = None) -> tune.Tuner:
    """A fresh Ray Tune experiment `run-<time>` in the storage path (`<out>/ray` unless
    --storage-path names a shared folder or a URI) for the trials this driver takes from the
    study: its searcher says when none are left (other drivers may take some). With
    `confirmation`, the experiment runs the study's confirmation: every run trains its whole
    budget (no scheduler stops it) and is evaluated once, at the end. `resume`: the trials of an
    interrupted run it continues."""
    # With a search algorithm, Ray Tune keeps one trial pending at a time, so trials would start
    # one worker start-up apart (seconds each on a busy machine); as many as can run are pending.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(trials_at_once(cpus_per_trial, gpus_per_trial, max_concurrent))
    experiment = f"{'confirm' if confirmation else 'run'}-{time.strftime('%Y%m%d-%H%M%S')}"
    searcher = StudySearcher(spec, opened.study, opened.storage, join(storage_path, experiment),
                             artifact_store_for(out), opened.to_resume if resume is None else resume, driver, deadline,
                             confirmation)
    marks = [spec.confirm_kimg] if confirmation else spec.budget.marks()
    # At most every trial of the study once; the searcher says FINISHED when the queue is empty.
    most = len(opened.study.get_trials(deepcopy=False))
    return tune.Tuner(
        trainable(data, marks, cpus_per_trial, gpus_per_trial),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=FIFOScheduler() if confirmation else make_scheduler(spec), num_samples=most,
            max_concurrent_trials=max_concurrent,
            # A CPU trial reuses its worker (a process start saved per trial); a GPU trial gets a
            # fresh one, so that no cached memory, memory cap or failed CUDA context of one trial
            # is left to the next.
            trial_dirname_creator=lambda trial: trial.trial_id, reuse_actors=gpus_per_trial == 0,
        ),
        run_config=run_config(experiment, storage_path, quiet, opened, keep=1),
    )


def build_population_tuner(spec: StudySpec, opened: OpenedStudy, driver: Driver, data: VoxelDataset, out: Path,
                           storage_path: str, cpus_per_trial: float, gpus_per_trial: float,
                           max_concurrent: int | None, quiet: bool) -> tune.Tuner:
    """A Ray Tune experiment `population-<time>` that trains the study's WAITING trials as one
    population under PBT or PB2 (`voxgan_search.tuning.population`). Ray keeps every checkpoint
    (a member may copy any member's last one); the study's retention runs when all have ended."""
    from voxgan_search.tuning.lineage import member_folder
    from voxgan_search.tuning.population import PopulationRecorder, enlist, make_population_scheduler, perturbed_keys

    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(trials_at_once(cpus_per_trial, gpus_per_trial, max_concurrent))
    experiment = f"population-{time.strftime('%Y%m%d-%H%M%S')}"
    searcher = StudySearcher(spec, opened.study, opened.storage, join(storage_path, experiment),
                             artifact_store_for(out), [], driver)
    searcher.sweep_at_each_end = False
    # PBT draws whom to copy and how to perturb from Python's random module, PB2 also from
    # NumPy's: seeded by the study, so that a population's choices repeat
    random.seed(spec.seed + len(opened.study.get_trials(deepcopy=False)))
    np.random.seed(spec.seed)
    scheduler = make_population_scheduler(spec)
    members = enlist(searcher, list(perturbed_keys(spec)))
    by_number = {member["member"]: member for member in members}
    return tune.Tuner(
        trainable(data, spec.marks(), cpus_per_trial, gpus_per_trial),
        # one Ray trial per member, in order, each with its own starting config and values
        param_space={"member": tune.grid_search(list(by_number)),
                     **{key: tune.sample_from(functools.partial(member_value, by_number, key))
                        for key in ("voxgan", "perturb")}},
        tune_config=tune.TuneConfig(
            scheduler=scheduler, num_samples=1, max_concurrent_trials=max_concurrent,
            trial_dirname_creator=lambda trial: member_folder(trial.config["member"]),
            reuse_actors=gpus_per_trial == 0,
        ),
        run_config=run_config(experiment, storage_path, quiet, opened, keep=None,
                              recorder=PopulationRecorder(searcher)),
    )


def member_value(members: dict[int, dict], key: str, spec) -> dict:
    """`key` of the member whose number Ray Tune's grid gave this trial."""
    return members[spec.config.member][key]


def trainable(data: VoxelDataset, marks: list[float], cpus_per_trial: float, gpus_per_trial: float):
    """`train_trial` with the data, its evaluation marks and its resources."""
    return tune.with_resources(
        tune.with_parameters(train_trial, data=data, marks=marks, threads=max(1, int(cpus_per_trial)),
                             gpu_share=gpus_per_trial),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
    )


def run_config(experiment: str, storage_path: str, quiet: bool, opened: OpenedStudy, keep: int | None,
               recorder: tune.Callback | None = None) -> tune.RunConfig:
    """Where the experiment lives, the progress lines, and how many checkpoints Ray keeps per trial."""
    return tune.RunConfig(
        # A trial whose process or node dies ends ERROR (FAIL in the study), not re-run: the
        # study's trial count still counts it, and the other trials go on.
        name=experiment, storage_path=storage_path, verbose=0, failure_config=tune.FailureConfig(max_failures=0),
        callbacks=[ProgressPrinter(quiet=quiet, best=best_score_so_far(opened.study),
                                   best_finished=best_finished_score(opened.study)),
                   *([recorder] if recorder else [])],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
    )
