"""A study's outcome: the best trial beside the tutorial's recipe and the reference recipe, with
every metric they reported, and the checkpoints' disk use."""

from __future__ import annotations

from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

from voxgan.metric_table import REPORTED, SUMMARY_ROWS
from voxgan_search.records.ranking import baseline_trial, ranked_trials
from voxgan_search.records.trial_record import CHECKPOINT_ATTR, KIMG_ATTR, REASON_ATTR, RECIPE_ATTRS
from voxgan_search.tuning.checkpoint_store import checkpoint_size


def summary(study: optuna.Study) -> dict:
    """The best trial (None while none has finished) beside the tutorial baseline and the
    reference recipe, with every metric they reported, and the commonest reasons trials failed."""
    ranked = ranked_trials(study)
    best = ranked[0] if ranked else None

    def describe(trial: FrozenTrial | None) -> dict | None:
        if trial is None:
            return None
        return {
            "number": trial.number,
            "state": trial.state.name,
            "values": trial.values,
            "kimg": trial.user_attrs.get(KIMG_ATTR),
            "metrics": {key: trial.user_attrs[key] for key in REPORTED if key in trial.user_attrs},
            "params": trial.params,
        }

    counts = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    reasons = Counter(t.user_attrs.get(REASON_ATTR, "no reason recorded")
                      for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    return {"study": study.study_name, "objectives": study.metric_names, "trials": {k: v for k, v in counts.items() if v},
            "fail_reasons": dict(reasons.most_common(3)),
            "best": describe(best), **{label: describe(baseline_trial(study, label)) for label in RECIPE_ATTRS.values()},
            "checkpoints": checkpoint_disk(study)}


def checkpoint_disk(study: optuna.Study) -> dict:
    """What the study's checkpoints take in the storage path: the trials that still have one, and
    their bytes (each keeps its last checkpoint, with its samples picture)."""
    sizes = [checkpoint_size(t.user_attrs[CHECKPOINT_ATTR]) for t in study.get_trials(deepcopy=False)
             if CHECKPOINT_ATTR in t.user_attrs]
    return {"trials": sum(size > 0 for size in sizes), "bytes": sum(sizes)}


def format_summary(result: dict) -> str:
    """The study's outcome as a small table: the best trial next to the tutorial baseline and the
    reference recipe."""
    columns = [*RECIPE_ATTRS.values(), "best"]
    trials = [result.get(column) for column in columns]
    counts = ", ".join(f"{count} {state.lower()}" for state, count in result["trials"].items())
    lines = [f"study '{result['study']}': {counts}", f"  {'':28}" + "".join(f" {c:>12}" for c in columns),
             f"  {'':28}" + "".join(f" {'trial ' + str(t['number']) if t else '-':>12}" for t in trials)]
    for key, label in SUMMARY_ROWS:
        cells = [(trial or {}).get("metrics", {}).get(key) for trial in trials]
        if all(value is None for value in cells):  # a metric this study does not measure (probe_acc)
            continue
        lines.append(f"  {label:28}" + "".join(f" {v:12.3f}" if isinstance(v, (int, float)) else f" {'-':>12}" for v in cells))
    for column, trial in zip(columns, trials):
        if trial and column != "best" and trial["state"] != "COMPLETE":
            lines.append(f"  (the {column} ended {trial['state'].lower()}: its metrics are from its last evaluation)")
    for reason, count in result.get("fail_reasons", {}).items():
        lines.append(f"  failed: {count} x {reason}")
    if "checkpoints" in result:
        disk = result["checkpoints"]
        lines.append(f"  checkpoints: {disk['trials']} trial(s) keep one, {disk['bytes'] / 1e6:.1f} MB on disk")
    return "\n".join(lines)
