"""Run (or resume) a study: Optuna samples, Ray Tune schedules, the Optuna storage records.

Top to bottom: check the folder, load the data, open the study and register this driver on it
(`voxgan_search.coordination.opening`), start Ray (`voxgan_search.coordination.ray_session`), run a fresh Ray Tune experiment in the
storage path (`<out>/ray/` unless `--storage-path` says otherwise; `voxgan_search.tuning.checkpoint_store`,
`voxgan_search.tuning.tuner`), and summarise the study (`voxgan_search.records.summary`). Other drivers may share the study
(`voxgan_search.coordination.drivers`): each takes trials from the same queue until it is empty.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import TrialState

from voxgan_search.tuning.checkpoint_store import resolve_storage_path
from voxgan_search.coordination.drivers import Driver, others_live, owned_running
from voxgan_search.coordination.opening import OpenedStudy, check_folder, open_study
from voxgan_search.coordination.ray_session import quiet_ray
from voxgan_search.records import confirmation
from voxgan_search.records.ranking import kimg_spent
from voxgan_search.records.summary import summary
from voxgan_search.records.trial_record import CONFIRMATION_ATTR, TOTAL_ATTR, is_confirmation
from voxgan_search.study.spec import StudySpec
from voxgan.cli import make_output_folder
from voxgan.data import VoxelDataset, load_dataset
from voxgan.errors import VoxganError

DEFAULT_TRIALS = 20
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class SearchSettings:
    """The command line's choices, with the study file's defaults filled in."""

    trials: int
    out: Path
    storage: str | None
    storage_path: str
    """Ray Tune's storage path for checkpoints: an absolute folder or a URI (`resolve_storage_path`)."""
    resume: bool
    max_concurrent: int | None
    cpus_per_trial: float
    gpus_per_trial: float
    address: str | None
    time_budget: float | None
    kimg_budget: float | None = None
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace, spec: StudySpec) -> SearchSettings:
        out = args.out or Path("runs") / spec.name
        default_trials = spec.population.size if spec.population_based else DEFAULT_TRIALS
        settings = cls(
            trials=default_trials if args.trials is None else args.trials,
            out=out,
            storage=args.storage,
            storage_path=resolve_storage_path(args.storage_path, out),
            resume=args.resume,
            max_concurrent=args.max_concurrent if args.max_concurrent is not None else spec.resources.max_concurrent,
            cpus_per_trial=args.cpus_per_trial if args.cpus_per_trial is not None else spec.resources.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial if args.gpus_per_trial is not None else spec.resources.gpus_per_trial,
            address=args.address,
            time_budget=args.time_budget,
            kimg_budget=args.kimg_budget,
            quiet=args.quiet,
        )
        settings.check()
        if settings.gpus_per_trial == 0 and spec.trial_config({}).device == "cuda":
            raise VoxganError("the study's trials ask for device=cuda, but --gpus-per-trial is 0: Ray would "
                              "give them no GPU (set --gpus-per-trial, or device auto)")
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
        if self.kimg_budget is not None and self.kimg_budget <= 0:
            raise VoxganError("--kimg-budget must be a positive number of kimg")
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
    """Run the study to `settings.trials` trials, then its confirmation (`voxgan_search.records.
    confirmation`), and return its summary (best and confirmed pick vs the recipes)."""
    out = settings.out
    check_folder(out, settings.storage, settings.resume)
    data = load_dataset(spec.data)  # once per search; the trials share it through the object store
    if "probe_acc" in spec.objectives and not data.labelled:
        raise VoxganError(f"objective probe_acc classifies labelled shapes and {data.name} has no labels (an .npz "
                          f"with X_train / X_test / y_train / y_test has them)")
    driver = Driver.this_process()
    opened = open_study(spec, out, settings.storage, settings.resume, settings.trials, driver)
    if spec.population_based and settings.resume:
        restart_population(spec, opened, settings.trials)
    try:
        make_output_folder(out)
        if not settings.quiet:
            print(data.summary.text(), file=sys.stderr)  # what the trials learn from and are scored on
            print(f"{opening_line(spec.name, out, opened)}; checkpoints in {settings.storage_path}", file=sys.stderr)
        if opened.new_trials + len(opened.to_resume) + confirmation.runs_left(opened.study, spec) > 0:
            run_trials(spec, settings, opened, driver, data)
        if left := owned_running(opened.study, driver.id):
            # Tune catches SIGINT and returns from fit() as if the study were done; the trials it
            # stopped stay RUNNING. Exit as interrupted, not with a summary that looks final.
            raise KeyboardInterrupt(f"{len(left)} trial(s) left RUNNING; `--resume` with the same flags continues them")
    finally:
        opened.heartbeat.stop()
    if others := [t.number for t in opened.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]:
        print(f"this driver is done; trial(s) {', '.join(map(str, others))} still run under another driver, which "
              "finishes the study", file=sys.stderr)
    elif (settings.time_budget or settings.kimg_budget) and (ran := finished_count(opened)) < opened.total:
        which = "--time-budget" if settings.time_budget else "--kimg-budget"
        print(f"{which} reached: the study has {ran} of {opened.total} trials; `--resume` runs the rest",
              file=sys.stderr)
    return summary(opened.study)


def restart_population(spec: StudySpec, opened: OpenedStudy, size: int) -> None:
    """An interrupted population is not continued (`voxgan_search.tuning.population`): members a
    killed driver left RUNNING are marked FAIL, and when the study's last population ended so
    (and none is queued), a new population of `size` (the reference recipe first) is queued."""
    from voxgan_search.coordination.opening import enqueue_recipes
    from voxgan_search.coordination.slots import top_up
    from voxgan_search.tuning.population import INTERRUPTED_SHORT, fail_members, was_interrupted

    left_running = [n for n in opened.to_resume if not is_confirmation(opened.study.get_trials(deepcopy=False)[n])]
    fail_members(opened.study, left_running, opened.storage)
    opened.to_resume = [n for n in opened.to_resume if n not in left_running]
    if not was_interrupted(opened.study) or opened.new_trials > 0:
        return
    print(f"population-based training restarts: the interrupted population's members stay FAIL ("
          f"'{INTERRUPTED_SHORT}'), and a new population of {size} starts", file=sys.stderr)
    enqueue_recipes(opened.study, spec)
    total = len(confirmation.search_trials(opened.study)) + size - 1  # the reference recipe just queued, and the rest
    top_up(opened.study, total)
    opened.study.set_user_attr(TOTAL_ATTR, total)
    opened.new_trials, opened.total = size, total


def finished_count(opened: OpenedStudy) -> int:
    """The search's trials that ended."""
    return len(confirmation.search_trials(opened.study, FINISHED))


def opening_line(name: str, out: Path, opened: OpenedStudy) -> str:
    """What this run starts from: the study's trials so far, what it continues, what is queued."""
    line = (f"study '{name}' in {out}: {opened.started} of {opened.total} trials so far ({len(opened.to_resume)} "
            f"to continue), {opened.new_trials} to run")
    return line + (" (shared with the other live driver(s) of this study)" if opened.joined else "")


def run_trials(spec: StudySpec, settings: SearchSettings, opened: OpenedStudy, driver: Driver,
               data: VoxelDataset) -> None:
    """Take the search's trials from the study's queue with Ray Tune until it is empty (or the
    time budget, less what the confirmation needs, is spent), then plan and run the confirmation."""
    # Imported only once the input is accepted: they load Ray, and matplotlib, which writes its
    # font cache under $HOME.
    quiet_ray()
    from voxgan_search.coordination.ray_session import ray_session
    from voxgan_search.records.searcher import Deadline
    from voxgan_search.tuning.tuner import build_tuner, trials_at_once

    trials = opened.study.get_trials(deepcopy=False)
    resume_search = [n for n in opened.to_resume if not is_confirmation(trials[n])]
    resume_confirmation = [n for n in opened.to_resume if is_confirmation(trials[n])]
    tuner = functools.partial(build_tuner, spec, opened, driver, data, settings.out, settings.storage_path,
                              settings.cpus_per_trial, settings.gpus_per_trial, settings.max_concurrent,
                              quiet=settings.quiet)
    with ray_session(settings.out, settings.address, settings.gpus_per_trial):
        at_once = trials_at_once(settings.cpus_per_trial, settings.gpus_per_trial, settings.max_concurrent)
        deadline = Deadline(settings.time_budget, reserve=functools.partial(confirmation.reserve, opened.study, spec, at_once),
                            kimg=settings.kimg_budget, spent=functools.partial(kimg_spent, opened.study))
        if spec.population_based and opened.new_trials > 0:
            run_population(spec, settings, opened, driver, data)
        elif opened.new_trials + len(resume_search) > 0:
            tuner(deadline, resume=resume_search).fit()
        if owned_running(opened.study, driver.id) or others_live(opened.study, driver.id):
            return  # interrupted; or another driver's trials still run, and the last driver confirms
        if confirmation.plan(opened.study, spec) is None:
            if reason := confirmation.nothing_to_confirm(opened.study, spec):
                print(reason, file=sys.stderr)  # even with --quiet: it is why the summary has no confirmation
            return
        if not settings.quiet:
            print(confirmation_line(opened, spec, at_once), file=sys.stderr)
        tuner(deadline.for_confirmation(), confirmation=True, resume=resume_confirmation).fit()


def run_population(spec: StudySpec, settings: SearchSettings, opened: OpenedStudy, driver: Driver,
                   data: VoxelDataset) -> None:
    """Train the queued trials as one population; an interrupted one leaves no member RUNNING."""
    from voxgan_search.tuning.population import fail_members
    from voxgan_search.tuning.tuner import build_population_tuner

    build_population_tuner(spec, opened, driver, data, settings.out, settings.storage_path, settings.cpus_per_trial,
                           settings.gpus_per_trial, settings.max_concurrent, settings.quiet).fit()
    if left := owned_running(opened.study, driver.id):
        fail_members(opened.study, left, opened.storage)
        raise KeyboardInterrupt(f"{len(left)} population member(s) marked FAIL (a population is not continued); "
                                "`--resume` starts a new population")


def confirmation_line(opened: OpenedStudy, spec: StudySpec, at_once: int) -> str:
    """What the confirmation will run and cost, printed before it starts."""
    planned = opened.study.user_attrs[CONFIRMATION_ATTR]
    left = confirmation.runs_left(opened.study, spec)
    seconds = confirmation.estimated_seconds(opened.study, spec, at_once)
    cost = f", about {seconds / 60:.1f} min at {at_once} at once" if seconds else ""
    sources = ", ".join(f"trial {n}" for n in planned["sources"][:-1])
    return (f"confirmation: {sources} and the reference recipe (trial {planned['sources'][-1]}), retrained with seeds "
            f"{', '.join(map(str, planned['seeds']))} for {spec.confirm_kimg:g} kimg each and scored on every test "
            f"shape: {left} run(s) to go{cost}")
