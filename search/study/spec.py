"""A study definition: the YAML files in `studies/`, validated so that a bad one fails up front.

A study names its data, the fixed part of every trial's voxgan config (`base`), the budget of a
trial, the objective or objectives, the scheduler, the resources of a trial and the search space.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from voxgan_search.study.space import SpaceSpec
from voxgan.config import Config, DataConfig, apply_overrides, read_yaml
from voxgan.config.schema import ScheduleKey
from voxgan.errors import ConfigError, describe_validation_error
from voxgan.metric_table import OBJECTIVES

STUDIES_DIRS = (
    Path(__file__).resolve().parents[2] / "studies",  # a source checkout (editable install)
    Path(sys.prefix) / "share" / "voxgan" / "studies",  # `pip install .` puts them here
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Strict):
    """A trial trains on at most `kimg` thousand training shapes (real shapes shown to D, as
    StyleGAN counts), evaluating and reporting every `eval_every_kimg`. Counting shapes, not
    epochs, makes a budget mean the same training on 288 shapes as on 10,668, and gives every
    batch size the same number of shapes rather than small batches more steps."""

    kimg: float = Field(gt=0.0)
    eval_every_kimg: float = Field(gt=0.0)
    grace_kimg: float | None = Field(None, gt=0.0)
    """ASHA: what every trial gets before it can be stopped (default: eval_every_kimg)."""
    reduction_factor: float = Field(3.0, gt=1.0)
    """ASHA: the share of trials kept at each rung is 1 / reduction_factor."""

    @model_validator(mode="after")
    def _cadence_fits(self) -> Budget:
        if self.eval_every_kimg > self.kimg:
            raise ValueError(f"eval_every_kimg ({self.eval_every_kimg}) is larger than kimg ({self.kimg})")
        return self

    @property
    def grace(self) -> float:
        """ASHA's grace period: grace_kimg, or one evaluation when it is not given."""
        return self.grace_kimg or self.eval_every_kimg

    def rungs(self) -> list[float]:
        """ASHA's rungs, where it stops a trial unless it is in the best 1 / reduction_factor:
        grace * reduction_factor^k below kimg, counted as Ray Tune's ASHA counts them."""
        count = int(math.log(self.kimg / self.grace) / math.log(self.reduction_factor) + 1)
        return [round(self.grace * self.reduction_factor ** k, 6) for k in range(count)]

    def marks(self) -> list[float]:
        """The kimg at which a trial is evaluated: every eval_every_kimg, at each of ASHA's rungs
        (so that a rung between two evaluations, a first rung of 0.5 kimg say, decides on a score
        taken there and not one evaluation later), and at the end."""
        count = math.ceil(self.kimg / self.eval_every_kimg - 1e-9)
        every = {round(min(self.kimg, k * self.eval_every_kimg), 6) for k in range(1, count + 1)}
        return sorted(every | {rung for rung in self.rungs() if rung < self.kimg})


class Confirm(_Strict):
    """After the search, the `top` best finished trials and the reference recipe are retrained
    with `seeds` fresh seeds each (first_seed, first_seed + 1, ...: none is the search's own, so
    its luck does not carry over), on a larger evaluation: every test shape and `n_samples`
    samples. The pick is the config with the best mean score (`voxgan_search.records.confirmation`)."""

    top: int = Field(3, ge=0)
    """Finished trials to confirm; 0 turns confirmation off."""
    seeds: int = Field(3, ge=2)
    """Retrainings of each config: at least 2, for a spread and a paired interval."""
    first_seed: int = Field(1, ge=0)
    n_samples: int | None = Field(None, ge=2)
    """Samples of each confirmation evaluation (default: twice the search's)."""
    kimg: float | None = Field(None, gt=0.0)
    """Each retraining's budget (default: the search's budget.kimg)."""

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


class Range(_Strict):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        return self


POPULATION_SCHEDULERS = ("pbt", "pb2")


class Population(_Strict):
    """Population-based training (`scheduler: pbt` or `pb2`, `voxgan_search.tuning.population`):
    `size` members train side by side; every `interval_kimg` the worst `quantile` of them copy
    the weights and state of one of the best and continue with its settings perturbed. A member
    is one trial of the study."""

    size: int = Field(4, ge=2)
    """Members, the reference recipe among them (the others sampled from the space); `--trials` sets it too."""
    interval_kimg: float | None = Field(None, gt=0.0)
    """kimg between copies, and between evaluations (default: budget.eval_every_kimg)."""
    quantile: float = Field(0.25, gt=0.0, le=0.5)
    """The share of members that copy, and the share copied from."""
    resample_probability: float = Field(0.25, ge=0.0, le=1.0)
    """pbt: the chance that a perturbed key is drawn afresh from its range rather than scaled by
    0.8 or 1.2 (pb2 chooses new values with a Gaussian-process bandit instead)."""
    perturb: dict[ScheduleKey, Range | list[float]] | None = None
    """Keys perturbed at a copy, each with its range (or, pbt only, a list of values it moves
    along); default: every schedulable key the space searches, with its range there."""

    def marks(self, budget: Budget) -> list[float]:
        """The kimg at which a member is evaluated, and may copy or be copied: every interval, and the end."""
        interval = self.interval_kimg or budget.eval_every_kimg
        count = math.ceil(budget.kimg / interval - 1e-9)
        return sorted({round(min(budget.kimg, k * interval), 6) for k in range(1, count + 1)})


class Resources(_Strict):
    cpus_per_trial: float = Field(1.0, gt=0.0)
    gpus_per_trial: float = Field(0.0, ge=0.0)
    """Fractions below 1 pack several trials on one GPU."""
    max_concurrent: int | None = Field(None, ge=1)


class StudySpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    base: dict[str, Any] = {}
    """voxgan config keys fixed for every trial (e.g. eval sizes, a resolution-appropriate width)."""
    budget: Budget
    objectives: list[str] = ["score"]
    scheduler: Literal["asha", "fifo", "pbt", "pb2"] = "asha"
    """asha stops poor trials at its rungs; fifo trains every trial its whole budget; pbt and pb2
    train a population whose members copy each other (`population`)."""
    population: Population = Field(default_factory=Population)
    sampler: Literal["tpe", "random", "gp"] = "tpe"
    """gp: Optuna's Gaussian-process sampler (a model-based alternative to TPE)."""
    seed: int = 0
    resources: Resources = Field(default_factory=Resources)
    stop_degenerate: bool = True
    """A trial whose samples are degenerate at its first evaluation stops there, PRUNED with the
    reason (`voxgan.degeneracy`); the recipes' trials train on (ASHA may still stop them)."""
    confirm: Confirm = Field(default_factory=Confirm)
    keep_checkpoints: int = Field(3, ge=1)
    """Finished trials that keep their last checkpoint: the best ones (`voxgan_search.records.retention`)."""
    space: SpaceSpec = Field(default_factory=SpaceSpec)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _known_objectives(self) -> StudySpec:
        unknown = [name for name in self.objectives if name not in OBJECTIVES]
        if unknown or not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives must be distinct names from {sorted(OBJECTIVES)}, got {self.objectives}")
        return self

    @model_validator(mode="after")
    def _population_fits(self) -> StudySpec:
        if not self.population_based:
            return self
        if self.multi_objective:
            raise ValueError(f"scheduler {self.scheduler} ranks members by one objective; this study has "
                             f"{self.objectives}")
        if self.scheduler == "pb2" and any(isinstance(v, list) for v in (self.population.perturb or {}).values()):
            raise ValueError("scheduler pb2 perturbs ranges only ({low, high}), not lists of values")
        if self.population.interval_kimg and self.population.interval_kimg > self.budget.kimg:
            raise ValueError(f"population.interval_kimg ({self.population.interval_kimg:g}) is larger than "
                             f"budget.kimg ({self.budget.kimg:g})")
        return self

    @property
    def population_based(self) -> bool:
        """Trained as a population (pbt, pb2): members copy each other, none is stopped."""
        return self.scheduler in POPULATION_SCHEDULERS

    def marks(self) -> list[float]:
        """Where a search trial is evaluated: ASHA's and the budget's marks, or the population's."""
        return self.population.marks(self.budget) if self.population_based else self.budget.marks()

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[name] for name in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def trial_config(self, suggested: dict[str, Any]) -> Config:
        """The complete voxgan config of a trial: base, then the study's data, then the sample;
        with eval.probe on when an objective is probe_acc, the metric it needs."""
        fixed = {"data": self.data.model_dump(), "kimg": self.budget.kimg}
        if "probe_acc" in self.objectives:
            fixed["eval"] = {"probe": True}
        values = merge(merge(self.base, fixed), suggested)
        return Config.from_dict(values)


    def confirmation_config(self, searched: Config, seed: int) -> Config:
        """A searched trial's config retrained for confirmation: another seed, the confirmation's
        budget, every test shape and more samples."""
        values = searched.to_dict()
        n_samples = self.confirm.n_samples or 2 * searched.eval.n_samples
        values = merge(values, {"seed": seed, "kimg": self.confirm_kimg,
                                "eval": {"n_samples": n_samples, "max_real": None}})
        return Config.from_dict(values)

    @property
    def confirm_kimg(self) -> float:
        return self.confirm.kimg or self.budget.kimg


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested dict update that returns a new dict (neither argument is changed)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_study_path(name: str | Path) -> Path:
    """A study file by path, or by name among the shipped `studies/` (e.g. `chairs32`)."""
    path = Path(name)
    if path.is_file():
        return path
    for folder in STUDIES_DIRS:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    shipped = sorted({p.stem for folder in STUDIES_DIRS for p in folder.glob("*.yaml")})
    raise ConfigError(f"{name}: no such study file (shipped studies: {', '.join(shipped)})")


def load_study(name: str | Path, overrides: list[str] | None = None) -> StudySpec:
    """Read and validate a study; also build the baseline trial's config so that a `base` or
    `data` section that cannot make a valid voxgan config fails now, not inside a trial."""
    from voxgan_search.study.space import baseline_config_values

    path = resolve_study_path(name)
    values = apply_overrides(read_yaml(path), overrides or [])
    try:
        spec = StudySpec.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None
    try:
        spec.trial_config(baseline_config_values(spec.space))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return spec
