"""A Ray Tune searcher that asks and tells the harness's Optuna study, so the study tells the truth.

Written against Ray Tune's public `Searcher` interface (`suggest`, `on_trial_result`,
`on_trial_complete`) and Optuna's public ask/tell/report/set_user_attr on the one `Study` the
harness owns. It:

- takes a WAITING trial of the study for each new trial (`voxgan_search.coordination.slots`; define-by-run over the
  space table), or hands a trial an interrupted run left RUNNING to a new Ray trial, which
  continues from the trial's checkpoint, and says FINISHED when neither is left;
- names this driver on each trial it runs (`voxgan_search.coordination.drivers`), so other drivers leave it alone;
- records every evaluation on the Optuna trial (`voxgan_search.records.evaluation_record`);
- tells PRUNED for trials the scheduler stopped before their budget (their last value is already
  an intermediate value) and for trials stopped for degenerate samples (with a `prune_reason`), FAIL with a reason for non-finite values, diverged, errored or crashed
  trials, and COMPLETE with the objectives' values otherwise;
- deletes, once a trial has ended, the checkpoints the study no longer keeps (`voxgan_search.records.retention`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
from ray.tune.search import Searcher

from voxgan_search.coordination.drivers import Driver, abandoned_trials
from voxgan_search.coordination.slots import take
from voxgan_search.records.evaluation_record import EvaluationRecord
from voxgan_search.records.retention import Retention
from voxgan_search.records.trial_record import (
    CHECKPOINT_ATTR, CONFIG_ATTR, CONFIRM_SEED_ATTR, CONFIRMS_ATTR, CURVE_ATTR, FOLDER_ATTR, OWNER_ATTR,
    PRUNE_REASON_ATTR, RAY_TRIAL_ATTR, REASON_ATTR, RECIPE_ATTRS, REFERENCE_ATTR, SECONDS_ATTR, Report, Status,
    is_confirmation, is_finite, trained_config,
)
from voxgan_search.study.space import suggest
from voxgan_search.study.spec import StudySpec
from voxgan_search.tuning.checkpoint_store import remove_other_checkpoints
from voxgan.config import Config


class Deadline:
    """When a run takes no new trial. --time-budget: seconds from the first trial's start, less a
    reserve kept for the confirmation that follows the search (`reserve()`, re-read each time: it
    is estimated from the trials that finished). --kimg-budget: once the search's trials have
    trained this many kimg in all (`spent()`; trials in flight finish, so a study ends a little
    above it)."""

    def __init__(self, seconds: float | None, reserve: Callable[[], float] = lambda: 0.0,
                 kimg: float | None = None, spent: Callable[[], float] = lambda: 0.0):
        self.seconds = seconds
        self.reserve = reserve
        self.kimg = kimg
        self.spent = spent
        self.at: float | None = None

    def passed(self) -> bool:
        if self.kimg is not None and self.spent() >= self.kimg:
            return True
        if self.seconds is None:
            return False
        self.at = self.at or time.monotonic() + self.seconds
        return time.monotonic() + self.reserve() > self.at

    def for_confirmation(self) -> Deadline:
        """The same time limit, with nothing more held back and no kimg limit (the confirmation's
        runs are counted, not budgeted)."""
        after = Deadline(self.seconds)
        after.at = self.at
        return after


class StudySearcher(Searcher):
    def __init__(self, spec: StudySpec, study: optuna.Study, storage: optuna.storages.BaseStorage,
                 experiment_dir: Path | str, artifact_store: FileSystemArtifactStore, resume: list[int],
                 driver: Driver | None = None, deadline: Deadline | None = None, confirmation: bool = False):
        single = not spec.multi_objective
        modes = ["min" if d == "minimize" else "max" for d in spec.directions]
        super().__init__(metric=spec.objectives[0] if single else spec.objectives, mode=modes[0] if single else modes)
        self.spec = spec
        self.study = study
        self.storage = storage
        self.to_resume = list(resume)
        """Numbers of Optuna trials an interrupted run left RUNNING, continued before new ones are asked."""
        self.driver = driver or Driver.this_process()
        self.deadline = deadline or Deadline(None)
        """When no new trial is taken (running ones finish): Ray Tune's own time budget would stop
        the running trials too."""
        self.confirmation = confirmation
        """This searcher runs the study's confirmation (`voxgan_search.records.confirmation`), not its search."""
        self.records: dict[str, EvaluationRecord] = {}
        self.told: set[str] = set()
        self.retention = Retention(study, spec.keep_checkpoints)
        self.sweep_at_each_end = True
        """Run the retention as each trial ends (a population's recorder runs it once all have)."""
        self.record_kwargs = {"experiment_dir": experiment_dir, "artifact_store": artifact_store,
                              "report_values": single}

    # ---- asking ---------------------------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.to_resume:
            return self.reattach(trial_id, self.to_resume.pop(0))
        if self.deadline.passed():
            return Searcher.FINISHED
        trial = take(self.study, self.storage, self.confirmation)
        if trial is None:
            # The queue is empty. Trials of a driver that died meanwhile are continued here, by
            # the last live driver (abandoned_trials is empty while another is live).
            trials = self.study.get_trials(deepcopy=False)
            self.to_resume = [number for number in abandoned_trials(self.study, self.driver.id)
                              if is_confirmation(trials[number]) == self.confirmation]
            return self.reattach(trial_id, self.to_resume.pop(0)) if self.to_resume else Searcher.FINISHED
        self.start_record(trial_id, trial, [])
        config = self.trial_config(trial)
        return {"voxgan": config, "optuna_trial": trial.number, "stop_degenerate": self.stops_degenerate(trial.user_attrs)}

    def stops_degenerate(self, user_attrs: dict) -> bool:
        """Whether the trial stops at degenerate first samples: a search trial of a study that asks
        for it, not a recipe (the comparison) nor a confirmation run (counted exactly)."""
        recipe = any(user_attrs.get(label) for label in RECIPE_ATTRS.values())
        return self.spec.stop_degenerate and not self.confirmation and not recipe

    def trial_config(self, trial: optuna.Trial) -> Config:
        """Define-by-run over the study's space, composed into a complete voxgan config, stored.
        The trainable gets this `Config` itself (Ray pickles it); the study keeps it as a dict."""
        config = self.spec.trial_config(suggest(trial, self.spec.space))
        if CONFIRMS_ATTR in trial.user_attrs:  # a confirmation run: the searched trial's own config, retrained
            searched = self.study.get_trials(deepcopy=False)[trial.user_attrs[CONFIRMS_ATTR]]
            # a population member's schedule, the reference recipe as it started
            trained = searched.user_attrs[CONFIG_ATTR] if searched.user_attrs.get(REFERENCE_ATTR) else trained_config(searched)
            config = self.spec.confirmation_config(Config.from_dict(trained), trial.user_attrs[CONFIRM_SEED_ATTR])
        trial.set_user_attr(CONFIG_ATTR, config.to_dict())
        return config

    def reattach(self, trial_id: str, number: int) -> dict:
        """Give a RUNNING Optuna trial of an interrupted run to a new Ray trial."""
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        optuna_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        stored = self.storage.get_trial(optuna_id)
        trial = optuna.trial.Trial(self.study, optuna_id)
        if FOLDER_ATTR in stored.user_attrs:  # the interrupted run's folder: only the checkpoint continued from stays
            remove_other_checkpoints(stored.user_attrs[FOLDER_ATTR], stored.user_attrs.get(CHECKPOINT_ATTR))
        record = self.start_record(trial_id, trial, stored.user_attrs.get(CURVE_ATTR, []))
        record.restore_lost_reports(stored.intermediate_values)
        # A driver killed between asking a trial and storing its config leaves only the params:
        # replaying define-by-run on the same trial returns them and stores the config.
        saved = stored.user_attrs.get(CONFIG_ATTR)
        config = Config.from_dict(saved) if saved else self.trial_config(trial)
        return {"voxgan": config, "optuna_trial": number, "resume_from": stored.user_attrs.get(CHECKPOINT_ATTR),
                "stop_degenerate": self.stops_degenerate(stored.user_attrs)}

    def start_record(self, trial_id: str, trial: optuna.Trial, curve: list) -> EvaluationRecord:
        trial.set_user_attr(OWNER_ATTR, self.driver.id)  # first: other drivers now leave it alone
        trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        self.records[trial_id] = EvaluationRecord(trial, trial_id, curve, **self.record_kwargs)
        return self.records[trial_id]

    # ---- results --------------------------------------------------------------------------------

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.records:
            self.records[trial_id].add(result, self.metric)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.told or trial_id not in self.records:
            return
        record = self.records[trial_id]
        if result and not error:
            # Ray hands the result on which a scheduler stops a trial to this call alone.
            record.add(result, self.metric)
        state, values, reason = self.verdict(result, error)
        if reason:
            record.trial.set_user_attr(REASON_ATTR if state == TrialState.FAIL else PRUNE_REASON_ATTR, reason)
        if result and isinstance(result.get("time_total_s"), float):
            record.trial.set_user_attr(SECONDS_ATTR, result["time_total_s"])
        self.study.tell(record.trial, values, state=state, skip_if_finished=True)
        self.told.add(trial_id)
        if self.sweep_at_each_end:
            self.retention.sweep()

    def verdict(self, result: dict | None, error: bool) -> tuple[TrialState, list[float] | None, str | None]:
        """(state, values, reason) for a trial that ended."""
        if error:
            return TrialState.FAIL, None, ("the trial's process crashed or its node left the Ray cluster "
                                           "(see its error.txt in the storage path)")
        report = Report.from_result(result) if result else None
        if report is None:
            return TrialState.FAIL, None, "the trial ended without reporting"
        if not report.status.evaluated:
            return TrialState.FAIL, None, report.reason or report.status.value
        values = [report.metrics.get(name, math.nan) for name in self.spec.objectives]
        if not is_finite(values):
            return TrialState.FAIL, None, f"non-finite objective values {values}"
        if report.status != Status.FINISHED:
            return TrialState.PRUNED, None, report.reason  # a reason: stopped for degenerate samples
        return TrialState.COMPLETE, values, None

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the Optuna storage is the searcher's state, and `--resume` reads it."""
