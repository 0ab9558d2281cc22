"""A study's `--trials` held as WAITING trials, taken one at a time and atomically by any driver.

`study.ask()` takes a WAITING trial when there is one and otherwise creates a new trial, so two
drivers that both see one trial left would make one too many. Here the total is enqueued up front
(`top_up`) and a driver only ever takes a WAITING trial (`take`): Optuna's storage moves a trial
from WAITING to RUNNING for exactly one caller (a row lock on an RDB storage), so however the
drivers' requests interleave, the study ends with exactly its total.

Creating the queue must be exclusive too. The driver that created the study (creation is atomic:
one name, one study) fills it and then records the total in the study's `trials` attribute;
another driver waits for that attribute before it takes anything. Later, `--trials` above the
total raises it only in a driver alone on the study (`voxgan_search.coordination.drivers`), which no other driver
can be at the same moment.
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState

from voxgan_search.coordination.drivers import GRACE_S, others_live
from voxgan_search.records.trial_record import TOTAL_ATTR, is_confirmation


def search_count(study: optuna.Study) -> int:
    """The study's trials of the search: all but its confirmation runs, which come on top."""
    return sum(not is_confirmation(t) for t in study.get_trials(deepcopy=False))


def top_up(study: optuna.Study, total: int) -> int:
    """Enqueue empty trials (the sampler fills them in) until the study's search holds `total`
    trials. Returns how many were added; a study already that large is left alone."""
    missing = max(0, total - search_count(study))
    for _ in range(missing):
        study.enqueue_trial({})
    return missing


def settle_total(study: optuna.Study, trials: int, created: bool, me: str) -> int:
    """Fill the queue of a study this driver created, or wait for its creator to; raise the total
    to `trials` when this driver is alone. Returns the study's total."""
    if created:
        top_up(study, trials)
        study.set_user_attr(TOTAL_ATTR, trials)
        return trials
    total = wait_for_total(study, me)
    if trials > (total or 0) and not others_live(study, me):
        top_up(study, trials)
        total = max(trials, search_count(study))
        study.set_user_attr(TOTAL_ATTR, total)
    return total if total is not None else search_count(study)


def wait_for_total(study: optuna.Study, me: str) -> int | None:
    """The total its creator recorded; None for a study that never got one (made by an older
    voxgan, or its creator died while filling the queue: the creator's first trial starts only
    once the total is recorded, and a live creator records it within moments)."""
    deadline = time.monotonic() + GRACE_S
    while (total := study.user_attrs.get(TOTAL_ATTR)) is None:
        if any(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False)):
            return None
        if time.monotonic() > deadline and not others_live(study, me):
            return None
        time.sleep(0.2)
    return int(total)


def is_open_slot(trial: optuna.trial.FrozenTrial) -> bool:
    """A WAITING trial `top_up` enqueued (no fixed parameters), not yet taken."""
    return trial.state == TrialState.WAITING and not trial.system_attrs.get("fixed_params")


def waiting(study: optuna.Study) -> int:
    """WAITING trials of the search (its confirmation's are `confirmation.runs_left`)."""
    return sum(not is_confirmation(t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def take(study: optuna.Study, storage: optuna.storages.BaseStorage, confirmation: bool = False) -> optuna.Trial | None:
    """The oldest WAITING trial of the search (or, with `confirmation`, of the confirmation) this
    call moved to RUNNING, or None when none is left.

    The trial is bound to a freshly loaded study, so that the sampler sees every trial as it is
    now (a Study caches its trials between `ask` and `tell`, and the other drivers' trials change
    in the meantime)."""
    fresh = optuna.load_study(study_name=study.study_name, storage=storage, sampler=study.sampler)
    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in fresh.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if is_confirmation(frozen) != confirmation:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        try:
            if not storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                continue  # another driver took it first
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        return optuna.trial.Trial(fresh, trial_id)
    return None
