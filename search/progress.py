"""Live progress for a terminal: one line per evaluation and per finished trial, instead of Ray's
wide status tables."""

from __future__ import annotations

import math
import sys
import time

import optuna
from ray.tune import Callback

from search.study import StudySpec


def best_score_so_far(study: optuna.Study) -> float:
    """The lowest combined score any earlier evaluation reached, so that a resumed search's
    "best" continues the study's rather than restarting at the first new result."""
    return min((score for trial in study.get_trials(deepcopy=False)
                for _, score in trial.user_attrs.get("curve", [])), default=math.inf)


class ProgressPrinter(Callback):
    def __init__(self, spec: StudySpec, quiet: bool = False, best: float = math.inf):
        self.spec = spec
        self.quiet = quiet
        self.best = best
        self.done = 0
        self.start = time.monotonic()

    def _print(self, line: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.start
            print(f"[{elapsed:7.1f}s] {line}", file=sys.stderr, flush=True)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if result.get("status") not in ("running", "finished"):
            return
        self.best = min(self.best, result["score"])
        self._print(f"trial {trial.config.get('optuna_trial', '?'):>4} epoch {result['epoch']:>3}  score {result['score']:.3f}  "
                    f"1-NNA {result['iou_1nna']:.3f}  C2ST {result['c2st_acc']:.3f}  MMD {result['iou_mmd']:.3f}  "
                    f"COV {result['iou_cov']:.2f}  (best {self.best:.3f})")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        last = trial.last_result or {}
        status = last.get("status", "?")
        if status == "running":
            status = "stopped early"
        reason = f": {last['reason']}" if last.get("reason") else ""
        self._print(f"trial {trial.config.get('optuna_trial', '?'):>4} {status}{reason}  ({self.done} done this run)")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.done += 1
        self._print(f"trial {trial.config.get('optuna_trial', '?'):>4} crashed ({self.done} done this run)")
