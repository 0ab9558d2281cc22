"""Opening a study for a run: the folder checks, the storage, the sampler, the baseline, and what
is left to run.

The Optuna storage is the source of truth. A new run creates the study, enqueues the tutorial
baseline, and enqueues the rest of `--trials` as WAITING trials that drivers take one at a time
(`voxgan_search.coordination.slots`), so a study ends with exactly `--trials` trials, none run twice, however many
drivers share it. `--resume` registers this driver on the study (`voxgan_search.coordination.drivers`), tops the
queue up to `--trials`, and, when no other driver is live, continues the trials an interrupted
driver left RUNNING from their last checkpoint. Everything a user can get wrong (the folder, the
storage, the study's objectives) is checked before anything is written, so a refused run leaves
no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from voxgan_search.coordination.drivers import Driver, Heartbeat, abandoned_trials, others_live
from voxgan_search.records.trial_record import DEVIATIONS_ATTR, RECIPE_ATTRS
from voxgan_search.coordination.slots import is_open_slot, settle_total, waiting
from voxgan_search.study.space import baseline
from voxgan_search.coordination.storage import DB_NAME, connect, create_or_load, storage_url, write_fast
from voxgan_search.study.spec import StudySpec
from voxgan.cli import make_output_folder
from voxgan.errors import VoxganError


@dataclass
class OpenedStudy:
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    heartbeat: Heartbeat
    """This driver's record on the study, started: stop it when the run ends."""
    to_resume: list[int]
    """Numbers of the trials an interrupted run left RUNNING (none while another driver is live)."""
    started: int
    """Trials the study already has (RUNNING, finished), not counting enqueued ones."""
    new_trials: int
    """WAITING trials, shared with any other driver of the study."""
    joined: bool
    """Another driver was live on the study when this one opened it."""
    total: int
    """The study's total (`voxgan_search.coordination.slots`): --trials, or more when the study already had more, or
    less when another driver was live (only a driver alone raises the total)."""


def check_folder(out: Path, storage: str | None, resume: bool) -> None:
    """A new run needs a folder without a study; --resume one with a study (or a --storage URL)."""
    default_db = storage is None and (out / DB_NAME).is_file()
    if not resume and default_db:
        raise VoxganError(f"{out}: a study is already here; use --resume to continue it, or another --out")
    if resume and storage is None and not default_db:
        raise VoxganError(f"--resume: no study in {out} ({DB_NAME} not found); give the interrupted search's --out")


def open_study(spec: StudySpec, out: Path, storage_arg: str | None, resume: bool, trials: int,
               driver: Driver) -> OpenedStudy:
    """The study this run continues or starts, with this driver registered on it, its sampler
    seeded, its baseline and the rest of `trials` enqueued."""
    if storage_arg is None:
        make_output_folder(out)  # the default SQLite file lives there
    storage = connect(storage_url(storage_arg, out))
    study, created = create_or_load(storage, spec.name, spec.directions, spec.objectives, None, resume)
    write_fast(storage)
    heartbeat = Heartbeat(driver, study, storage).start()  # before anything is read: see voxgan_search.coordination.drivers
    joined = others_live(study, driver.id)
    existing = study.get_trials(deepcopy=False)
    started = len([t for t in existing if t.state != TrialState.WAITING])
    # A resumed study must not replay the same random start: the seed moves with the trial count
    # (trials asked or enqueued with parameters, not the open slots of the queue), and a driver
    # that joins another takes a seed of its own.
    counted = len([t for t in existing if not is_open_slot(t)])
    study.sampler = make_sampler(spec, seed=spec.seed + counted + (driver.seed_offset if joined else 0))
    if created:
        enqueue_recipes(study, spec)
    total = settle_total(study, trials, created, driver.id)
    return OpenedStudy(study, storage, heartbeat, abandoned_trials(study, driver.id), started, waiting(study), joined,
                       total)


def make_sampler(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    """TPE that models parameters jointly and, with trials in flight, assumes the worst for them
    (constant liar) so that parallel trials do not all sample the same region."""
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "gp":  # parameters asked only under a condition are sampled at random
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def stale_running_trials(study: optuna.Study) -> list[int]:
    """Numbers of the trials an interrupted driver left RUNNING, in order, when no driver is live."""
    return abandoned_trials(study)


def enqueue_recipes(study: optuna.Study, spec: StudySpec) -> None:
    """The tutorial's recipe as trial 0 of a new study and the reference recipe as trial 1, each
    labelled (`baseline` / `reference`) with what the space moved. A population starts with the
    reference recipe alone: a member spent on the tutorial's, which trains poorly in a CPU
    budget, would only be copied over."""
    recipes = {"reference": RECIPE_ATTRS["reference"]} if spec.population_based else RECIPE_ATTRS
    for name, label in recipes.items():
        point = baseline(spec.space, name)
        study.enqueue_trial(point.params, user_attrs={label: True, DEVIATIONS_ATTR: point.deviations})
