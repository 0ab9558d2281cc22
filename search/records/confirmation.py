"""Confirmation: is the search's pick really better than the reference recipe, or only luckier?

A study's best trial is the best of many single-seed scores, so part of its lead is the winner's
curse. Once the search has ended, the `confirm.top` best finished trials and the reference recipe
are each retrained with the same `confirm.seeds` fresh seeds, on a larger evaluation
(`StudySpec.confirmation_config`). The runs are trials of the same Optuna study, enqueued once
(`plan`), so the dashboard shows them, any driver may run them, and `--resume` finishes an
interrupted confirmation with exactly (top + 1) x seeds runs. `outcome` reads them back: per
config its mean and spread over seeds, the seed-paired difference to the reference recipe with a
95% t interval, the pick (the best mean), and one sentence on whether the search beat the
reference recipe.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from voxgan_search.records.ranking import ranked_trials
from voxgan_search.records.trial_record import (
    CONFIG_ATTR, CONFIRM_SEED_ATTR, CONFIRMATION_ATTR, CONFIRMS_ATTR, REFERENCE_ATTR, SECONDS_ATTR, is_confirmation,
)
from voxgan_search.study.spec import StudySpec

CONFIDENCE = 0.95
FEW_SEEDS = 6
"""Below this many paired seeds a pick's win is called a lead: three close differences make a
narrow t interval by chance (on the default study a 3-seed win of -0.016, interval -0.023 to
-0.010, came out +0.030 on 6 fresh seeds; docs/quality.md)."""


def runs(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
    """The study's confirmation runs (of the given states)."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if is_confirmation(t)]


def search_trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=states) if not is_confirmation(t)]


def reference_trial(study: optuna.Study) -> FrozenTrial | None:
    return next((t for t in search_trials(study) if t.user_attrs.get(REFERENCE_ATTR)), None)


def choose_sources(study: optuna.Study, top: int) -> tuple[list[int], int | None]:
    """The `top` best finished trials of the search, and the reference recipe's trial (confirmed
    whatever its state: a recipe ASHA stopped is still the comparison; None when it never ran)."""
    reference = reference_trial(study)
    best = [t.number for t in ranked_trials(study) if reference is None or t.number != reference.number][:top]
    return best, reference.number if reference is not None and CONFIG_ATTR in reference.user_attrs else None


def plan(study: optuna.Study, spec: StudySpec) -> dict | None:
    """Enqueue the confirmation of the search as it stands: the runs of the `top` best finished
    trials and of the reference recipe that the study does not hold yet. Called when the search
    has ended, or when --time-budget ended this run's share of it: a search `--resume`d later
    and finishing better trials adds theirs, and configs confirmed before stay in the table.
    A `--resume` with more `confirm.seeds` adds the new seeds' runs of every config, for when
    the interval is too wide to decide. Runs are enqueued before `CONFIRMATION_ATTR` records them, and the runs already there are
    counted, so a driver killed in between enqueues nothing twice. None when confirmation is off
    or no trial of the search finished."""
    if spec.confirm.top == 0:
        return None
    before = study.user_attrs.get(CONFIRMATION_ATTR, {"sources": [], "seeds": spec.confirm.seed_list})
    best, reference = choose_sources(study, spec.confirm.top)
    if reference is None or not best:
        return before if before["sources"] else None  # nothing finished to confirm against the reference
    sources = [n for n in before["sources"][:-1]] + [n for n in best if n not in before["sources"]] + [reference]
    seeds = before["seeds"] + [seed for seed in spec.confirm.seed_list if seed not in before["seeds"]]  # more seeds: more runs
    enqueued = {(t.user_attrs[CONFIRMS_ATTR], t.user_attrs[CONFIRM_SEED_ATTR]) for t in runs(study)}
    trials = study.get_trials(deepcopy=False)
    for number in sources:
        for seed in seeds:
            if (number, seed) not in enqueued:
                study.enqueue_trial(trials[number].params, user_attrs={CONFIRMS_ATTR: number, CONFIRM_SEED_ATTR: seed})
    confirmation = {"sources": sources, "seeds": seeds}
    if confirmation != before:
        study.set_user_attr(CONFIRMATION_ATTR, confirmation)
    return confirmation


def nothing_to_confirm(study: optuna.Study, spec: StudySpec) -> str | None:
    """Why a study whose confirmation is on ends without one, in one line for the user (None
    when confirmation is off or planned): a budget can end the search before the reference
    recipe, the comparison, has trained, or before any searched trial finished."""
    if spec.confirm.top == 0 or CONFIRMATION_ATTR in study.user_attrs:
        return None
    best, reference = choose_sources(study, spec.confirm.top)
    if reference is None:
        return ("no confirmation: the reference recipe, which the confirmation compares with, has not trained; "
                "`--resume` with more --trials (or a larger budget) runs it")
    if best:
        return None
    ended = [t.state for t in search_trials(study) if t.number != reference]
    return (f"no confirmation: no trial of the search finished besides the reference recipe "
            f"({ended.count(TrialState.PRUNED)} stopped early, {ended.count(TrialState.FAIL)} failed); "
            "`--resume` with a larger --kimg-budget or --time-budget searches on")


def runs_left(study: optuna.Study, spec: StudySpec) -> int:
    """Confirmation runs not yet ended, counting those of a confirmation not yet planned."""
    planned = study.user_attrs.get(CONFIRMATION_ATTR)
    if not spec.confirm.top:
        return 0
    total = (len(planned["sources"]) * len(set(planned["seeds"]) | set(spec.confirm.seed_list)) if planned
             else (spec.confirm.top + 1) * spec.confirm.seeds)
    return max(0, total - len(runs(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))))


def estimated_seconds(study: optuna.Study, spec: StudySpec, at_once: int) -> float | None:
    """What the confirmation's runs left take, `at_once` at a time, from the median time of the
    search's trials that trained their whole budget, scaled to the confirmation's kimg (None
    before any has). The larger evaluation adds a little to it."""
    seconds = [t.user_attrs[SECONDS_ATTR] for t in search_trials(study, (TrialState.COMPLETE,))
               if SECONDS_ATTR in t.user_attrs]
    if not seconds:
        return None
    per_run = statistics.median(seconds) * spec.confirm_kimg / spec.budget.kimg
    return per_run * math.ceil(runs_left(study, spec) / max(1, at_once))


def reserve(study: optuna.Study, spec: StudySpec, at_once: int) -> float:
    """Seconds of --time-budget the search leaves for its confirmation: `estimated_seconds`, 0
    while it cannot be estimated or confirmation is off."""
    return (estimated_seconds(study, spec, at_once) or 0.0) if spec.confirm.top else 0.0


@dataclass(frozen=True)
class Confirmed:
    """One confirmed config: its scores by seed, and its seed-paired difference to the reference."""

    source: int
    label: str
    scores: dict[int, float]
    """Score of each finished retraining, by seed."""
    runs: dict[int, int]
    """Trial number of each finished retraining, by seed."""
    difference: float | None = None
    """Mean over seeds of (this score - the reference recipe's score); negative is better."""
    interval: tuple[float, float] | None = None
    """Its 95% t interval over the paired seeds."""

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores.values()) if self.scores else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores.values()) if len(self.scores) > 1 else math.nan


def paired(config: dict[int, float], reference: dict[int, float]) -> tuple[float | None, tuple[float, float] | None]:
    """Mean and 95% t interval of config - reference over the seeds both finished."""
    differences = [config[seed] - reference[seed] for seed in sorted(config) if seed in reference]
    if len(differences) < 2:
        return (differences[0] if differences else None), None
    mean = statistics.fmean(differences)
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return mean, (mean - half, mean + half)


@dataclass(frozen=True)
class Outcome:
    configs: list[Confirmed]
    """The confirmed configs, the reference recipe last."""
    expected: int
    """Runs planned: (top + 1) x seeds."""
    finished: int
    """Runs that ended (COMPLETE, PRUNED or FAIL)."""

    @property
    def complete(self) -> bool:
        return self.finished >= self.expected

    @property
    def reference(self) -> Confirmed:
        return self.configs[-1]

    @property
    def pick(self) -> Confirmed | None:
        """The config with the best mean score over its seeds (the reference recipe may win)."""
        scored = [c for c in self.configs if c.scores]
        return min(scored, key=lambda c: c.mean) if scored else None

    def verdict(self) -> str:
        """One plain sentence: did the search beat the reference recipe?"""
        pick, seeds = self.pick, len(self.reference.scores)
        if pick is None:
            return "No confirmation run finished."
        if pick is self.reference:
            return (f"The search did not beat the reference recipe: over {seeds} seeds it has the best mean "
                    f"score ({pick.mean:.3f}) of the configs confirmed.")
        if pick.interval is None:
            return f"Too few paired seeds to compare trial {pick.source} with the reference recipe."
        low, high = pick.interval
        if high < 0:
            won = (f"The search beat the reference recipe: its pick, trial {pick.source}, scores {-pick.difference:.3f} "
                   f"lower over {seeds} paired seeds (95% interval of the difference {low:+.3f} to {high:+.3f})")
            if seeds < FEW_SEEDS:
                return (f"{won}; over so few seeds that is a lead: `--resume --set confirm.seeds={seeds + FEW_SEEDS}` "
                        f"retrains every confirmed config on {FEW_SEEDS} more.")
            return f"{won}."
        return (f"The search did not show it beats the reference recipe: its pick, trial {pick.source}, differs by "
                f"{pick.difference:+.3f} over {seeds} paired seeds, and the 95% interval ({low:+.3f} to {high:+.3f}) "
                "includes 0.")


def outcome(study: optuna.Study) -> Outcome | None:
    """The study's confirmation read back (None when it has none)."""
    planned = study.user_attrs.get(CONFIRMATION_ATTR)
    if not planned:
        return None
    sources, seeds = planned["sources"], planned["seeds"]
    done = runs(study, (TrialState.COMPLETE,))
    scores = {number: {t.user_attrs[CONFIRM_SEED_ATTR]: t.user_attrs["score"] for t in done
                       if t.user_attrs[CONFIRMS_ATTR] == number} for number in sources}
    numbers = {number: {t.user_attrs[CONFIRM_SEED_ATTR]: t.number for t in done
                        if t.user_attrs[CONFIRMS_ATTR] == number} for number in sources}
    reference = scores[sources[-1]]
    configs = [Confirmed(n, f"trial {n}", scores[n], numbers[n], *paired(scores[n], reference)) for n in sources[:-1]]
    configs.append(Confirmed(sources[-1], "reference recipe", reference, numbers[sources[-1]]))
    finished = len(runs(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))
    return Outcome(configs, len(sources) * len(seeds), finished)


def pick_run(study: optuna.Study) -> FrozenTrial | None:
    """The run `export` takes: the confirmed pick's best-scoring retraining (its config and
    checkpoint), once the confirmation is complete; None otherwise."""
    result = outcome(study)
    if result is None or not result.complete or result.pick is None:
        return None
    pick = result.pick
    best_seed = min(pick.scores, key=pick.scores.get)
    return study.get_trials(deepcopy=False)[pick.runs[best_seed]]


def format_outcome(result: Outcome) -> list[str]:
    """The summary's confirmation table and its sentence."""
    seeds = sorted({seed for c in result.configs for seed in c.scores})
    lines = [f"confirmation: {result.finished} of {result.expected} runs; score by seed "
             f"({', '.join(map(str, seeds))}), all test shapes"]
    for c in result.configs:
        by_seed = ", ".join(f"{c.scores[s]:.3f}" if s in c.scores else "-" for s in seeds)
        spread = f"{c.mean:.3f} ± {c.std:.3f}" if len(c.scores) > 1 else (f"{c.mean:.3f}" if c.scores else "-")
        paired_text = ""
        if c.difference is not None:
            paired_text = f"  vs reference {c.difference:+.3f}"
            if c.interval is not None:
                paired_text += f" [{c.interval[0]:+.3f}, {c.interval[1]:+.3f}]"
        marker = " (pick)" if c is result.pick else ""
        lines.append(f"  {c.label + marker:24} {spread:>15}  seeds: {by_seed}{paired_text}")
    if result.complete:
        lines.append(f"  {result.verdict()}")
    else:
        lines.append("  the confirmation is not complete: `--resume` with the same flags finishes it")
    return lines
