"""The search space, define-by-run: each trial's questions depend on its earlier answers.

The optimiser chosen for a network decides which of its parameters exist (beta1 for Adam/AdamW,
momentum for SGD/RMSprop, a learning rate on Adadelta's own scale), so Optuna sees real
conditional parameters. A study file narrows any dimension, or fixes it with a single value.
The tutorial's recipe (SEED-SPEC) is the first trial of every study: `baseline_params`.
"""

from __future__ import annotations

from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voxgan.config import Activation, OptimizerName

LossName = Literal["bce", "lsgan", "hinge"]
NETS = {"generator": "g", "discriminator": "d"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Strict):
    low: float = Field(gt=0.0)
    high: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self


class IntRange(_Strict):
    low: int = Field(ge=0, le=8)
    high: int = Field(ge=0, le=8)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self


def _as_list(value: Any) -> Any:
    """A single value fixes a dimension: `loss: bce` means `loss: [bce]`."""
    return value if isinstance(value, list) else [value]


def _non_empty(values: list) -> list:
    if not values:
        raise ValueError("an empty list of choices leaves nothing to search")
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"choices repeat: {values}")
    return values


class NetSpace(_Strict):
    """One network's part of the space; names are prefixed g_ / d_ in Optuna."""

    optimizer: list[OptimizerName] = ["adam", "adamw", "sgd", "rmsprop", "adadelta"]
    lr: FloatRange = FloatRange(low=1e-5, high=1e-1)
    adadelta_lr: FloatRange = FloatRange(low=0.05, high=5.0)
    """Adadelta's learning rate is a multiplier near 1, on another scale than the others'."""
    beta1: FloatRange = FloatRange(low=0.1, high=0.95)
    momentum: FloatRange = FloatRange(low=0.5, high=0.99)
    activation: list[Activation] = ["relu", "leaky_relu", "elu", "selu", "tanh", "sigmoid"]
    width: list[int] = [8, 16, 32, 64]
    extra_depth: IntRange = IntRange(low=0, high=2)

    _lists = field_validator("optimizer", "activation", "width", mode="before")(_as_list)
    _filled = field_validator("optimizer", "activation", "width")(_non_empty)

    @field_validator("width")
    @classmethod
    def _positive_width(cls, widths: list[int]) -> list[int]:
        if min(widths) < 1:
            raise ValueError(f"widths must be at least 1, got {widths}")
        return widths


class SpaceSpec(_Strict):
    batch_size: list[int] = [8, 16, 32, 64, 128]
    generator: NetSpace = Field(default_factory=NetSpace)
    discriminator: NetSpace = Field(default_factory=NetSpace)
    latent_size: list[int] = [32, 64, 128, 200]
    latent_dist: list[Literal["normal", "uniform"]] = ["normal", "uniform"]
    """normal: N(0, latent_std), the tutorial's; uniform: U(0, 1), the paper's."""
    latent_std: FloatRange = FloatRange(low=0.1, high=1.0)
    d_accuracy_threshold: list[float | None] = [None, 0.8]
    """None: D always updates; a number: the paper's rule."""
    loss: list[LossName] = ["bce", "lsgan", "hinge"]

    _lists = field_validator("batch_size", "latent_size", "latent_dist", "d_accuracy_threshold", "loss", mode="before")(_as_list)
    _filled = field_validator("batch_size", "latent_size", "latent_dist", "d_accuracy_threshold", "loss")(_non_empty)

    @field_validator("batch_size", "latent_size")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if min(values) < 1:
            raise ValueError(f"must be at least 1, got {values}")
        return values

    @field_validator("d_accuracy_threshold")
    @classmethod
    def _probability(cls, values: list[float | None]) -> list[float | None]:
        if any(v is not None and not 0.0 < v <= 1.0 for v in values):
            raise ValueError(f"thresholds are accuracies in (0, 1] or null, got {values}")
        return values


def _suggest_net(trial: optuna.Trial, prefix: str, net: NetSpace) -> dict[str, Any]:
    optimizer = trial.suggest_categorical(f"{prefix}_optimizer", net.optimizer)
    lr_range = net.adadelta_lr if optimizer == "adadelta" else net.lr
    values: dict[str, Any] = {
        "optimizer": optimizer,
        "lr": trial.suggest_float(f"{prefix}_{'adadelta_lr' if optimizer == 'adadelta' else 'lr'}", lr_range.low, lr_range.high, log=True),
        "activation": trial.suggest_categorical(f"{prefix}_activation", net.activation),
        "width": trial.suggest_categorical(f"{prefix}_width", net.width),
        "extra_depth": trial.suggest_int(f"{prefix}_extra_depth", net.extra_depth.low, net.extra_depth.high),
    }
    if optimizer in ("adam", "adamw"):
        values["beta1"] = trial.suggest_float(f"{prefix}_beta1", net.beta1.low, net.beta1.high)
    elif optimizer in ("sgd", "rmsprop"):
        values["momentum"] = trial.suggest_float(f"{prefix}_momentum", net.momentum.low, net.momentum.high)
    return values


def suggest(trial: optuna.Trial, space: SpaceSpec) -> dict[str, Any]:
    """Ask the trial for one point of the space; returns voxgan config keys (nested)."""
    values = {
        "batch_size": trial.suggest_categorical("batch_size", space.batch_size),
        "generator": _suggest_net(trial, "g", space.generator),
        "discriminator": _suggest_net(trial, "d", space.discriminator),
        "latent_size": trial.suggest_categorical("latent_size", space.latent_size),
        "latent_dist": trial.suggest_categorical("latent_dist", space.latent_dist),
        "d_accuracy_threshold": trial.suggest_categorical("d_accuracy_threshold", space.d_accuracy_threshold),
        "loss": trial.suggest_categorical("loss", space.loss),
    }
    if values["latent_dist"] == "normal":
        values["latent_std"] = trial.suggest_float("latent_std", space.latent_std.low, space.latent_std.high, log=True)
    return values


# ---- the tutorial's recipe as a point of the space ---------------------------------------------

TUTORIAL = {
    "batch_size": 32,
    "latent_size": 200,
    "latent_dist": "normal",
    "latent_std": 0.33,
    "d_accuracy_threshold": None,
    "loss": "bce",
    "g_optimizer": "adam", "g_lr": 0.0025, "g_beta1": 0.5, "g_activation": "relu", "g_width": 64, "g_extra_depth": 0,
    "d_optimizer": "adam", "d_lr": 1e-5, "d_beta1": 0.9, "d_activation": "leaky_relu", "d_width": 64, "d_extra_depth": 0,
}


def _nearest(value: Any, choices: list) -> Any:
    if value in choices:
        return value
    numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if isinstance(value, (int, float)) and numbers:
        return min(numbers, key=lambda c: abs(c - value))
    return choices[0]


def baseline_params(space: SpaceSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tutorial's recipe as Optuna params, moved to the nearest point the space admits.

    Returns (params, deviations): deviations name what the space forced away from the tutorial
    (e.g. width 64 -> 16 in a CPU-sized study), so the baseline's label stays honest.
    """
    params: dict[str, Any] = {}
    for key in ("batch_size", "latent_size", "latent_dist", "d_accuracy_threshold", "loss"):
        params[key] = _nearest(TUTORIAL[key], getattr(space, key))
    if params["latent_dist"] == "normal":
        params["latent_std"] = min(max(TUTORIAL["latent_std"], space.latent_std.low), space.latent_std.high)
    for net_name, prefix in NETS.items():
        net: NetSpace = getattr(space, net_name)
        optimizer = _nearest(TUTORIAL[f"{prefix}_optimizer"], net.optimizer)
        params[f"{prefix}_optimizer"] = optimizer
        lr_key, lr_range = (f"{prefix}_adadelta_lr", net.adadelta_lr) if optimizer == "adadelta" else (f"{prefix}_lr", net.lr)
        params[lr_key] = min(max(TUTORIAL[f"{prefix}_lr"], lr_range.low), lr_range.high)
        params[f"{prefix}_activation"] = _nearest(TUTORIAL[f"{prefix}_activation"], net.activation)
        params[f"{prefix}_width"] = _nearest(TUTORIAL[f"{prefix}_width"], net.width)
        params[f"{prefix}_extra_depth"] = min(max(0, net.extra_depth.low), net.extra_depth.high)
        if optimizer in ("adam", "adamw"):
            params[f"{prefix}_beta1"] = min(max(TUTORIAL[f"{prefix}_beta1"], net.beta1.low), net.beta1.high)
        elif optimizer in ("sgd", "rmsprop"):
            params[f"{prefix}_momentum"] = net.momentum.high
    deviations = {k: v for k, v in params.items() if k in TUTORIAL and TUTORIAL[k] != v}
    return params, deviations


def baseline_suggestion(space: SpaceSpec) -> dict[str, Any]:
    """The baseline's voxgan config keys, by replaying `suggest` on a fixed trial."""
    params, _ = baseline_params(space)
    return suggest(optuna.trial.FixedTrial(params), space)
