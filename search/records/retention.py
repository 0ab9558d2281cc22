"""Which checkpoints a study keeps: those of running trials and of the best finished ones.

At 64^3 one checkpoint is some 340 MB, and every trial keeps its last one (Ray Tune keeps one
per trial), so a 100-trial study would keep some 34 GB. After each trial ends, the checkpoints
that can no longer be the best nor be continued are deleted from the storage path:

- RUNNING (and WAITING) trials keep theirs: an interrupted run's trials continue from it;
- the best `keep_checkpoints` finished (COMPLETE) trials keep theirs (`ranking.ranked_trials`):
  `export` copies the best one;
- confirmation runs keep theirs until the confirmation is complete, then the confirmed pick's
  runs keep theirs (`confirmation_kept`);
- every other trial loses it: a PRUNED or FAILed trial is never continued, and a COMPLETE one
  outside the best can only move further down as trials finish.

The trial's `checkpoint` user attribute keeps the location it had (a finished trial's attributes
cannot change); `export` of such a trial writes its config alone.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from voxgan_search.records import confirmation
from voxgan_search.records.ranking import ranked_trials
from voxgan_search.records.trial_record import CHECKPOINT_ATTR, FOLDER_ATTR
from voxgan_search.tuning.checkpoint_store import remove_checkpoint, remove_other_checkpoints

RESUMABLE = (TrialState.RUNNING, TrialState.WAITING)


def confirmation_kept(study: optuna.Study) -> set[int]:
    """Confirmation runs keep their checkpoints until the confirmation is complete; then the
    confirmed pick's runs keep theirs (`export` copies the best of them)."""
    result = confirmation.outcome(study)
    if result is None:
        return set()
    if not result.complete:
        return {t.number for t in confirmation.runs(study)}
    return set(result.pick.runs.values()) if result.pick else set()


class Retention:
    def __init__(self, study: optuna.Study, keep: int):
        self.study = study
        self.keep = keep
        self.deleted: set[int] = set()
        """Trials whose checkpoint this run deleted (or found gone): not looked at again."""

    def sweep(self) -> list[int]:
        """Delete the checkpoints the rule no longer keeps; returns the numbers of those trials."""
        best = {t.number for t in ranked_trials(self.study)[: self.keep]} | confirmation_kept(self.study)
        swept = []
        for trial in self.study.get_trials(deepcopy=False):
            if trial.state in RESUMABLE or trial.number in best or trial.number in self.deleted:
                continue
            if CHECKPOINT_ATTR in trial.user_attrs:
                remove_checkpoint(trial.user_attrs[CHECKPOINT_ATTR])
                swept.append(trial.number)
            if FOLDER_ATTR in trial.user_attrs:  # and any its process wrote but never reported (it crashed)
                remove_other_checkpoints(trial.user_attrs[FOLDER_ATTR], keep=None)
            self.deleted.add(trial.number)
        return swept
