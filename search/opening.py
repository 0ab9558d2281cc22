"""Opening a study for a run: the folder checks, the storage, the sampler, the baseline, and what
is left to run.

The Optuna storage is the source of truth. A new run creates the study and enqueues the tutorial
baseline; `--resume` finds the trials an interrupted driver left RUNNING (they continue from their
last checkpoint) and counts only the trials still missing, so a study ends with exactly
`--trials` trials, none run twice. Everything a user can get wrong (the folder, the storage, the
study's objectives) is checked before anything is written, so a refused run leaves no files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.results import RECIPE_ATTRS
from search.space import baseline
from search.storage import DB_NAME, connect, create_or_load, storage_url, write_fast
from search.study import StudySpec
from voxgan.errors import VoxganError


@dataclass
class OpenedStudy:
    study: optuna.Study
    storage: optuna.storages.BaseStorage
    to_resume: list[int]
    """Numbers of the trials an interrupted run left RUNNING."""
    started: int
    """Trials the study already has (RUNNING, finished), not counting enqueued ones."""
    new_trials: int
    """Trials still to ask for."""


def check_folder(out: Path, storage: str | None, resume: bool) -> None:
    """A new run needs a folder without a study; --resume one with a study (or a --storage URL)."""
    default_db = storage is None and (out / DB_NAME).is_file()
    if not resume and default_db:
        raise VoxganError(f"{out}: a study is already here; use --resume to continue it, or another --out")
    if resume and storage is None and not default_db:
        raise VoxganError(f"--resume: no study in {out} ({DB_NAME} not found); give the interrupted search's --out")


def open_study(spec: StudySpec, out: Path, storage_arg: str | None, resume: bool, trials: int) -> OpenedStudy:
    """The study this run continues or starts, with its sampler seeded and its baseline enqueued."""
    if storage_arg is None:
        out.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
    storage = connect(storage_url(storage_arg, out))
    study, created = create_or_load(storage, spec.name, spec.directions, spec.objectives, None, resume)
    write_fast(storage)
    # A resumed study must not replay the same random start: the seed moves with the trial count.
    study.sampler = make_sampler(spec, seed=spec.seed + len(study.get_trials(deepcopy=False)))
    if created:
        enqueue_recipes(study, spec)
    started = len([t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING])
    return OpenedStudy(study, storage, stale_running_trials(study), started, max(0, trials - started))


def make_sampler(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    """TPE that models parameters jointly and, with trials in flight, assumes the worst for them
    (constant liar) so that parallel trials do not all sample the same region."""
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def stale_running_trials(study: optuna.Study) -> list[int]:
    """Numbers of the trials an interrupted driver left RUNNING, in order."""
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]


def enqueue_recipes(study: optuna.Study, spec: StudySpec) -> None:
    """The tutorial's recipe as trial 0 of a new study and the reference recipe as trial 1, each
    labelled (`baseline` / `reference`) with what the space moved."""
    for name, label in RECIPE_ATTRS.items():
        point = baseline(spec.space, name)
        study.enqueue_trial(point.params, user_attrs={label: True, "baseline_deviations": point.deviations})
