"""Live progress for a terminal: one line per evaluation and per finished trial, instead of Ray's
wide status tables."""

from __future__ import annotations

import math
import sys
import time

from ray.tune import Callback

from search.study import StudySpec


class ProgressPrinter(Callback):
    def __init__(self, spec: StudySpec, quiet: bool = False):
        self.spec = spec
        self.quiet = quiet
        self.best = math.inf
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
