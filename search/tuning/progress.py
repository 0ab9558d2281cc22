"""Live progress for a terminal: one line per evaluation and per finished trial, instead of Ray's
wide status tables.

Two "best" figures, labelled apart because they differ: `(best X)` on an evaluation line is the
lowest score any evaluation has reached so far, intermediate ones included; `best finished` on a
trial's last line is the lowest score of a trial that trained its whole budget, which is what the
summary (single objective) chooses from.
"""

from __future__ import annotations

import math
import sys
import time

import optuna
from ray.tune import Callback

from voxgan_search.records.ranking import finished_trials
from voxgan_search.tuning.lineage import Copy
from voxgan_search.records.trial_record import CURVE_ATTR, Report, Status, final_score
from voxgan.metric_table import PROGRESS

LEGEND = ("progress: one line per evaluation; (best X) is the lowest score of any evaluation so far, "
          "intermediate ones included; 'best finished' is the lowest of trials that trained their whole budget")


def best_score_so_far(study: optuna.Study) -> float:
    """The lowest combined score any earlier evaluation reached, so that a resumed search's
    "best" continues the study's rather than restarting at the first new result."""
    return min((score for trial in study.get_trials(deepcopy=False)
                for _, score in trial.user_attrs.get(CURVE_ATTR, [])), default=math.inf)


def best_finished_score(study: optuna.Study) -> float:
    """The lowest final score of a trial that trained its whole budget."""
    return min((final_score(t) for t in finished_trials(study)), default=math.inf)


def noise(values: dict[str, float], name: str) -> str:
    """The score's standard error (" ±0.015") after the score, where the evaluation measured it."""
    return f" ±{values['score_se']:.3f}" if name == "score" and "score_se" in values else ""


def number(trial, result: dict) -> int | str:
    """The Optuna trial a Ray trial runs: a population member says so in its reports (its config
    becomes the copied member's), any other trial in its config."""
    return result.get("member", trial.config.get("optuna_trial", "?"))


class ProgressPrinter(Callback):
    def __init__(self, quiet: bool = False, best: float = math.inf, best_finished: float = math.inf):
        self.quiet = quiet
        self.best = best
        self.best_finished = best_finished
        self.done = 0
        self.start = time.monotonic()
        self.say(LEGEND)

    def say(self, line: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.start
            print(f"[{elapsed:7.1f}s] {line}", file=sys.stderr, flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        report = Report.from_result(result)
        if report is None or not report.status.evaluated:
            return
        self.best = min(self.best, report.score)
        values = "  ".join(f"{short} {report.metrics[name]:.3f}" + noise(report.metrics, name)
                           for name, short in PROGRESS if name in report.metrics)
        if report.copy:
            copied = Copy.from_json(report.copy)
            switched = ", ".join(f"{key} {value:.3g}" for key, value in copied.values.items()) or "nothing"
            self.say(f"trial {number(trial, result):>4} copied trial {copied.source} at {copied.kimg:g} kimg and "
                     f"switched {switched}")
        self.say(f"trial {number(trial, result):>4} {report.kimg:>6.1f} kimg  {values}  (best {self.best:.3f})")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        report = Report.from_result(trial.last_result or {})
        status = "?" if report is None else report.status.value
        if report is not None and report.status == Status.RUNNING:
            status = "stopped at its first evaluation" if report.reason else "stopped early"
        if report is not None and report.status == Status.FINISHED and math.isfinite(report.score):
            self.best_finished = min(self.best_finished, report.score)
            status = f"finished, score {report.score:.3f}"
        reason = f": {report.reason}" if report is not None and report.reason else ""
        best = f", best finished {self.best_finished:.3f}" if math.isfinite(self.best_finished) else ""
        self.say(f"trial {number(trial, trial.last_result or {}):>4} {status}{reason}  ({self.done} done this run{best})")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        self.say(f"trial {number(trial, trial.last_result or {}):>4} crashed ({self.done} done this run)")
