"""Reading a study's trials back: the finished ones, ranked, the best, the recipes' trials.

Every trial carries its complete voxgan config and its checkpoint's location as user attributes
(`voxgan_search.records.trial_record`), so the best trial can be retrained or sampled without
the search.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from voxgan.errors import VoxganError
from voxgan_search.records.trial_record import BASELINE_ATTR, CONFIG_ATTR, KIMG_ATTR, final_score, is_confirmation


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The search's COMPLETE trials (confirmation runs are read by `voxgan_search.records.confirmation`)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if CONFIG_ATTR in t.user_attrs and not is_confirmation(t)]


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The finished trials, best first. Single objective: by value. Several objectives: the
    Pareto-optimal trials by their combined `score` (a documented tie-break, since a front has
    no single best), then the others by `score`."""
    trials = finished_trials(study)
    if len(study.directions) == 1:
        sign = 1 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1
        return sorted(trials, key=lambda t: sign * t.value)
    front = {t.number for t in study.best_trials} if trials else set()
    return sorted(trials, key=lambda t: (t.number not in front, final_score(t)))


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The first of `ranked_trials`."""
    ranked = ranked_trials(study)
    if not ranked:
        raise VoxganError(f"study '{study.study_name}' has no finished trial yet")
    return ranked[0]


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials) or CONFIG_ATTR not in trials[number].user_attrs:
        raise VoxganError(f"study '{study.study_name}' has no trial {number} with a config to export")
    return trials[number]


def baseline_trial(study: optuna.Study, label: str = BASELINE_ATTR) -> FrozenTrial | None:
    """The trial of the tutorial recipe, or of the recipe another label of RECIPE_ATTRS names."""
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(label):
            return trial
    return None


def kimg_spent(study: optuna.Study) -> float:
    """What the search's trials have trained so far, in kimg: each one's last evaluation."""
    return sum(t.user_attrs.get(KIMG_ATTR, 0.0) for t in study.get_trials(deepcopy=False) if not is_confirmation(t))
