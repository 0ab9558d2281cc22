"""A study's outcome: the best trial beside the tutorial's recipe and the reference recipe, with
every metric they reported, and the checkpoints' disk use."""

from __future__ import annotations

import math
from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

from voxgan.metric_table import REPORTED, SUMMARY_ROWS
from voxgan_search.records.ranking import baseline_trial, kimg_spent, ranked_trials
from voxgan_search.records import confirmation
from voxgan_search.records.trial_record import (
    CHECKPOINT_ATTR, CONFIG_ATTR, KIMG_ATTR, PRUNE_REASON_ATTR, REASON_ATTR, RECIPE_ATTRS, trained_config,
)
from voxgan_search.tuning.checkpoint_store import SAMPLES_NAME, checkpoint_size, join, mesh_name, parent


def summary(study: optuna.Study) -> dict:
    """The best trial (None while none has finished) beside the tutorial baseline and the
    reference recipe, with every metric they reported, and the commonest reasons trials failed."""
    ranked = ranked_trials(study)
    best = ranked[0] if ranked else None
    counts = {state.name: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    reasons = Counter(t.user_attrs.get(REASON_ATTR, "no reason recorded")
                      for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    confirmed = confirmation.outcome(study)
    pick = confirmation.pick_run(study)
    return {"study": study.study_name, "objectives": study.metric_names, "trials": {k: v for k, v in counts.items() if v},
            "fail_reasons": dict(reasons.most_common(3)),
            "prune_reasons": dict(Counter(reason_kind(t.user_attrs[PRUNE_REASON_ATTR]) for t in study.get_trials(deepcopy=False)
                                          if PRUNE_REASON_ATTR in t.user_attrs).most_common(3)),
            "best": describe_trial(best), **{label: describe_trial(baseline_trial(study, label)) for label in RECIPE_ATTRS.values()},
            "confirmation": None if confirmed is None else {
                "lines": confirmation.format_outcome(confirmed), "complete": confirmed.complete,
                "verdict": confirmed.verdict() if confirmed.complete else None,
                "configs": [{"trial": c.source, "label": c.label, "scores": c.scores, "runs": c.runs, "mean": c.mean,
                             "std": c.std, "difference": c.difference, "interval": c.interval} for c in confirmed.configs]},
            "pick": describe_trial(pick), "pick_files": pick_files(pick),
            "kimg_spent": kimg_spent(study), "checkpoints": checkpoint_disk(study)}


def describe_trial(trial: FrozenTrial | None) -> dict | None:
    """A trial's state, values, metrics, params and config. `params` are where it started;
    `config` is what trained its weights: the same for a trial of a search, but for a population
    member that copied another (or a retraining of one) the start of the member whose weights it
    carries, with every switch since as its `schedule`."""
    if trial is None:
        return None
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": trial.values,
        "kimg": trial.user_attrs.get(KIMG_ATTR),
        "metrics": {key: trial.user_attrs[key] for key in REPORTED if key in trial.user_attrs},
        "params": trial.params,
        "config": trained_config(trial) if CONFIG_ATTR in trial.user_attrs else None,
    }


def schedule_line(schedule: list[dict]) -> str:
    """'generator.lr 0.003 from 2.016 kimg; ...': a schedule in one line."""
    return "; ".join(f"{e['key']} {e['value']:.3g} from {e['kimg']:g} kimg" for e in schedule)


def reason_kind(reason: str) -> str:
    """A prune reason without its figures (what comes in brackets), so that like ones count together."""
    return reason.split(" (")[0]


def pick_files(trial: FrozenTrial | None) -> dict | None:
    """Where the confirmed pick's last samples are: its picture and its mesh, beside its checkpoint."""
    if trial is None or CHECKPOINT_ATTR not in trial.user_attrs:
        return None
    folder = parent(trial.user_attrs[CHECKPOINT_ATTR])
    return {"checkpoint": trial.user_attrs[CHECKPOINT_ATTR], "samples": join(folder, SAMPLES_NAME),
            "mesh": join(folder, mesh_name(trial.user_attrs[KIMG_ATTR]))}


def checkpoint_disk(study: optuna.Study) -> dict:
    """What the study's checkpoints take in the storage path: the trials that still have one, and
    their bytes (each keeps its last checkpoint, with its samples picture)."""
    sizes = [checkpoint_size(t.user_attrs[CHECKPOINT_ATTR]) for t in study.get_trials(deepcopy=False)
             if CHECKPOINT_ATTR in t.user_attrs]
    return {"trials": sum(size > 0 for size in sizes), "bytes": sum(sizes)}


NOISE_WIDTH = 2.0
"""Two scores closer than this many combined standard errors differ by evaluation noise alone (about 95%)."""


def noise_lines(trials: dict[str, dict | None]) -> list[str]:
    """A line for each recipe whose score the best trial's is within the evaluation noise of."""
    best = trials.get("best")
    if not best or "score_se" not in best["metrics"]:
        return []
    lines = []
    for label, trial in trials.items():
        if label == "best" or not trial or trial["number"] == best["number"] or "score_se" not in trial["metrics"]:
            continue
        gap = best["metrics"]["score"] - trial["metrics"]["score"]
        noise = NOISE_WIDTH * math.hypot(best["metrics"]["score_se"], trial["metrics"]["score_se"])
        if abs(gap) < noise:
            lines.append(f"  the best (trial {best['number']}) and the {label} (trial {trial['number']}) differ by "
                         f"{gap:+.3f}, within their evaluation noise (±{noise:.3f}): one evaluation cannot order them")
    return lines


def next_steps(result: dict, run: str) -> list[str]:
    """Where to look when a study ends: the confirmed pick's samples and mesh, and the commands to run next."""
    lines = []
    files = result.get("pick_files")
    if files:
        lines += [f"the confirmed pick (trial {result['pick']['number']}): samples {files['samples']}",
                  f"  mesh {files['mesh']}"]
        schedule = (result["pick"]["config"] or {}).get("schedule")
        if schedule:
            lines.append(f"  trained under a schedule (export writes it): {schedule_line(schedule)}")
    lines += [f"next: voxgan-search export --run {run} --out best.yaml   (the confirmed pick's config and checkpoint)"
              if files else f"next: voxgan-search export --run {run} --out best.yaml",
              f"      voxgan-search dashboard --run {run}   (every trial, its curve and samples, in a browser)"]
    return lines


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
    lines += noise_lines(dict(zip(columns, trials)))
    for reason, count in result.get("fail_reasons", {}).items():
        lines.append(f"  failed: {count} x {reason}")
    for reason, count in result.get("prune_reasons", {}).items():
        lines.append(f"  stopped at the first evaluation: {count} x {reason}")
    if result.get("confirmation"):
        lines += result["confirmation"]["lines"]
    if "checkpoints" in result:
        disk = result["checkpoints"]
        lines.append(f"  checkpoints: {disk['trials']} trial(s) keep one, {disk['bytes'] / 1e6:.1f} MB on disk")
    return "\n".join(lines)
