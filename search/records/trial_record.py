"""A trial's record, in one place: what a Ray trial reports at each evaluation, its status, and
the names of everything the study stores about it.

The trainable sends a `Report` (flattened into the result dict Ray Tune carries,
`Report.as_result`); the searcher, the evaluation record and the progress lines read it back
(`Report.from_result`). What the driver keeps goes into Optuna user attributes named by the
constants below: the searcher, the evaluation record, the opening and the drivers write them;
`ranking`, `summary`, `export`, `report` and the retention only read them. Every metric of
`voxgan.metric_table.REPORTED` is also a user attribute under its own name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from voxgan.metric_table import REPORTED


class Status(str, Enum):
    """Where a Ray trial stands after a report."""

    RUNNING = "running"
    """Evaluated before the end of its budget. The last report of a trial that ends so was
    stopped: by the scheduler, or, with a `reason`, for degenerate samples (`voxgan.degeneracy`);
    PRUNED in the study."""
    FINISHED = "finished"
    """Evaluated at the end of its budget."""
    DIVERGED = "diverged"
    """A loss became NaN or infinite: the trial ends, FAIL in the study."""
    ERROR = "error"
    """An exception (out of memory, a bug): the trial ends, FAIL in the study."""

    @property
    def evaluated(self) -> bool:
        """A report of this status carries the metrics of an evaluation."""
        return self in (Status.RUNNING, Status.FINISHED)


@dataclass(frozen=True)
class Report:
    """One report of a Ray trial: an evaluation's metrics (every name of REPORTED), or why it ended."""

    status: Status
    metrics: dict[str, float] = field(default_factory=dict)
    """score and the other REPORTED metrics; a failure reports only a NaN score (ASHA reads it)."""
    kimg: float | None = None
    """The mark of the evaluation (a diverged trial: where it diverged)."""
    epoch: int | None = None
    start_kimg: float | None = None
    """The kimg this Ray trial started from: above 0 when it continued a checkpoint."""
    reason: str | None = None
    traceback: str | None = None
    cuda_visible_devices: str | None = None
    precision: str | None = None
    """What training ran in: fp32 or bf16 (autocast)."""
    node_id: str | None = None
    hostname: str | None = None
    degenerate: str | None = None
    """At a first evaluation: why the samples are degenerate (`voxgan.degeneracy`), stopped or not."""
    member: int | None = None
    """A population's member (`voxgan_search.tuning.population`): its Optuna trial number, which
    its Ray config stops saying once it has copied another member's."""
    copy: str | None = None
    """A member's first report after it copied another: JSON of `population.Copy`."""

    FIELDS = ("status", "kimg", "epoch", "start_kimg", "reason", "traceback", "cuda_visible_devices", "precision",
              "node_id", "hostname", "degenerate", "member", "copy")

    @classmethod
    def failed(cls, status: Status, reason: str, **fields: Any) -> Report:
        return cls(status, {"score": math.nan}, reason=reason, **fields)

    def as_result(self) -> dict[str, Any]:
        """The flat dict `tune.report` takes: the metrics and the fields that are set."""
        result: dict[str, Any] = dict(self.metrics)
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                result[name] = value.value if isinstance(value, Status) else value
        return result

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> Report | None:
        """The report inside a result Ray Tune hands back (with Ray's own keys beside it); None for
        a result that is not one (Ray's bookkeeping)."""
        try:
            status = Status(result.get("status"))
        except ValueError:
            return None
        metrics = {key: result[key] for key in REPORTED if key in result}
        return cls(status, metrics, **{name: result.get(name) for name in cls.FIELDS if name != "status"})

    @property
    def score(self) -> float:
        return self.metrics.get("score", math.nan)


def is_finite(values: list[float]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


# ---- the Optuna trial's user attributes ----------------------------------------------------------

CONFIG_ATTR = "config"
"""The trial's complete voxgan config: what `export` writes and `voxgan-train --config` retrains."""
CHECKPOINT_ATTR = "checkpoint"
"""The location of its last checkpoint in the storage path (`voxgan_search.tuning.checkpoint_store`)."""
CURVE_ATTR = "curve"
"""[[kimg, score], ...] of every evaluation."""
KIMG_ATTR = "kimg"
"""Thousands of training shapes at the trial's last evaluation."""
BASELINE_ATTR = "baseline"
REFERENCE_ATTR = "reference"
RECIPE_ATTRS = {"tutorial": BASELINE_ATTR, "reference": REFERENCE_ATTR}
"""The presets every new study runs first, in this order, and the user attribute that labels each:
the study then shows what the search gained over the tutorial and over a recipe known to train."""
DEVIATIONS_ATTR = "baseline_deviations"
"""What the study's space forced away from a recipe (e.g. width 64 -> 16), so its label stays honest."""
OWNER_ATTR = "driver"
"""The id of the driver running the trial (`voxgan_search.coordination.drivers`)."""
RAY_TRIAL_ATTR = "ray_trial_id"
FOLDER_ATTR = "ray_trial_folder"
"""The Ray trial's folder in the storage path (the last run's, for a continued trial)."""
DEVICES_ATTR = "cuda_visible_devices"
"""The GPU(s) Ray gave the trial."""
PRECISION_ATTR = "precision"
"""What it trained in: fp32 or bf16 (autocast)."""
RESUMED_ATTR = "resumed_from_kimg"
"""The kimg of the checkpoint a trial continued from after an interrupted run."""
NODE_ATTR = "ray_node_id"
HOST_ATTR = "hostname"
"""The Ray node (and its machine) that trained the trial; the last one for a continued trial."""
REASON_ATTR = "fail_reason"
DEGENERATE_ATTR = "degenerate_at_first"
"""Why a trial's samples were degenerate at its first evaluation, whether it stopped there or not
(a recipe's trial, or a study with `stop_degenerate: false`, trains on)."""
PRUNE_REASON_ATTR = "prune_reason"
"""Why a trial was stopped before its budget other than by the scheduler (degenerate samples)."""
SECONDS_ATTR = "seconds"
"""The trial's own time in this run (Ray's time_total_s): training, evaluation, checkpoints."""

TRAINED_CONFIG_ATTR = "trained_config"
"""A population member's config as its weights were trained: the starting config of the member
whose weights it carries, with every switch since as its `schedule`; `export` writes it and the
confirmation retrains it (`trained_config`)."""
LINEAGE_ATTR = "lineage"
"""A population member's copies: [{"kimg", "from" (the trial copied), "values" (what it switched to)}]."""

CONFIRMS_ATTR = "confirms"
"""On a confirmation run: the number of the trial whose config it retrains (`voxgan_search.records.confirmation`)."""
CONFIRM_SEED_ATTR = "confirm_seed"
"""... and the seed it retrains with."""

# ---- the study's user attributes -----------------------------------------------------------------

TOTAL_ATTR = "trials"
"""The study's total of trials (`voxgan_search.coordination.slots`)."""
CONFIRMATION_ATTR = "confirmation"
"""{"sources": [trial numbers, the reference recipe's last], "seeds": [...]}: the confirmation
planned once the search ended; its runs are enqueued with it."""
DRIVER_RECORD_PREFIX = "driver "
"""`driver <id>`: one live (or stopped) driver's record (`voxgan_search.coordination.drivers`)."""


def is_confirmation(trial: Any) -> bool:
    """A confirmation run, not a trial of the search."""
    return CONFIRMS_ATTR in trial.user_attrs


def final_score(trial: Any) -> float:
    """The score of a trial's last evaluation (inf when it has none): what ranks finished trials
    of a study with several objectives, and the progress lines' best."""
    return trial.user_attrs.get("score", math.inf)


def trained_config(trial: Any) -> dict:
    """The config that trained a trial's weights: a population member's with its schedule, or the
    trial's own."""
    return trial.user_attrs.get(TRAINED_CONFIG_ATTR) or trial.user_attrs[CONFIG_ATTR]
