"""The search space as one table: each entry is an Optuna parameter, its config key, its default
range and the condition under which it is asked.

The table drives everything that needs the space: `suggest` (define-by-run, so conditional
parameters are real: beta1 exists only for Adam/AdamW), the study file's `space:` section (which
narrows any dimension, or fixes it with a single value), the tutorial baseline (read from the
`tutorial` preset, moved to the nearest point the space admits), the table in docs/search.md
and the summary. Adding a dimension is one entry; an entry of `per_net` asks it for both networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from pydantic import BaseModel

from voxgan.config import dotted, preset
from voxgan.models import optimizers_using
from voxgan_search.study.space_model import Between, Dim, config_choices, study_space_model


def dim(param: str, default: tuple | Between | None = None, key: str | None = None,
        when: tuple[str, tuple] | None = None, study_key: str | None = None, note: str = "") -> tuple[Dim]:
    """One parameter; `key` defaults to `param`, `study_key` (the study file's key) to `key`, and
    the choices to every value the config key admits (`config_choices`)."""
    key = key or param
    condition = (when[0], tuple(when[1])) if when else None
    return (Dim(param, key, config_choices(key) if default is None else default, condition, study_key or key, note),)


def per_net(name: str, default: tuple | Between | None = None, when: tuple[str, tuple] | None = None,
            study_name: str | None = None, note: str = "") -> tuple[Dim, Dim]:
    """The same parameter for the generator (`g_<name>`, config key `generator.<name>`) and the
    discriminator (`d_<name>`); a condition names a parameter of the same network."""
    return tuple(  # type: ignore[return-value]
        dim(f"{prefix}_{study_name or name}", default, f"{net}.{name}",
            (f"{prefix}_{when[0]}", tuple(when[1])) if when else None, f"{net}.{study_name or name}", note)[0]
        for net, prefix in NETS.items())


NETS = {"generator": "g", "discriminator": "d"}
WGAN = ("wgan",)
GAN_LOSSES = tuple(loss for loss in config_choices("loss") if loss not in WGAN)
RATE_MULTIPLIERS = ("adadelta",)
"""Optimizers whose `lr` multiplies a step of their own making: a range of its own."""
RATES = tuple(name for name in config_choices("generator.optimizer") if name not in RATE_MULTIPLIERS)

TABLE: tuple[tuple[Dim, ...], ...] = (
    dim("batch_size", (8, 16, 32, 64, 128)),
    dim("loss", note="wgan: the Wasserstein critic with a gradient penalty (WGAN-GP)"),
    dim("gradient_penalty", Between(1.0, 20.0, log=True), when=("loss", WGAN), note="WGAN-GP's lambda"),
    dim("d_steps", Between(1, 5, integer=True), note="D updates per G update"),
    per_net("optimizer"),
    per_net("lr", Between(1e-5, 1e-1, log=True), when=("optimizer", RATES)),
    per_net("lr", Between(0.05, 5.0, log=True), when=("optimizer", RATE_MULTIPLIERS), study_name="adadelta_lr",
            note="Adadelta's rate is a multiplier near 1, on another scale than the others'"),
    per_net("beta1", Between(0.1, 0.95), when=("optimizer", optimizers_using("beta1"))),
    per_net("momentum", Between(0.5, 0.99), when=("optimizer", optimizers_using("momentum"))),
    per_net("activation"),
    per_net("width", (8, 16, 32, 64)),
    per_net("extra_depth", Between(0, 2, integer=True), note="stride-1 blocks beyond the minimum"),
    dim("g_norm", key="generator.norm", study_key="generator.norm"),
    dim("d_norm", key="discriminator.norm", when=("loss", GAN_LOSSES), study_key="discriminator.norm"),
    dim("d_critic_norm", tuple(n for n in config_choices("discriminator.norm") if n != "batch"),
        key="discriminator.norm", when=("loss", WGAN), study_key="discriminator.critic_norm",
        note="a gradient-penalised critic must not use batch norm"),
    dim("d_spectral_norm", key="discriminator.spectral_norm", study_key="discriminator.spectral_norm"),
    dim("r1_gamma", (0.0, 0.1, 1.0, 10.0), note="R1 penalty on real shapes; 0 is off"),
    dim("instance_noise", Between(0.0, 0.3), note="std of the noise on every volume D sees"),
    dim("ema_decay", (0.0, 0.99, 0.999), note="moving average of G's weights for sampling; 0 is off; its warm-up "
        "keeps the decay below 0.99 for 890 G steps, so 0.99 and 0.999 differ only in longer runs"),
    dim("g_output_init", note="G's output bias at start: 0.5 everywhere, or the data's occupancy"),
    dim("g_upsample", note="G's doublings: transposed convolutions, or nearest upsampling "
        "and a 3x3x3 convolution"),
    dim("latent_size", (32, 64, 128, 200)),
    dim("latent_dist", note="normal: N(0, latent_std), the tutorial's; uniform: U(0, 1), the paper's"),
    dim("latent_std", Between(0.1, 1.0, log=True), when=("latent_dist", ("normal",))),
    dim("d_accuracy_threshold", (None, 0.8), note="the paper's rule off, or D updated only below 80% accuracy"),
)
"""Entries in the order Optuna is asked: a condition names a parameter asked before it."""

DIMS: tuple[Dim, ...] = tuple(d for entry in TABLE for d in entry)
SpaceSpec = study_space_model(DIMS)
"""The study file's `space:` section, with the table's defaults."""


def asked(space: BaseModel, ask: Callable[[Dim, list | Between], Any]) -> dict[str, Any]:
    """Walk the table in order, skipping parameters whose condition fails; `ask(dim, domain)`
    gives each value. Returns Optuna params (name -> value)."""
    params: dict[str, Any] = {}
    for d in DIMS:
        if d.when is None or params.get(d.when[0]) in d.when[1]:
            params[d.param] = ask(d, d.domain(space))
    return params


def ask_trial(trial: optuna.Trial, d: Dim, domain: list | Between) -> Any:
    """The Optuna call for one dimension."""
    if not isinstance(domain, Between):
        return trial.suggest_categorical(d.param, domain)
    if domain.integer:
        return trial.suggest_int(d.param, int(domain.low), int(domain.high), log=domain.log)
    return trial.suggest_float(d.param, domain.low, domain.high, log=domain.log)


def suggest(trial: optuna.Trial, space: BaseModel) -> dict[str, Any]:
    """Ask the trial for one point of the space; returns voxgan config keys (nested)."""
    return config_values(asked(space, lambda d, domain: ask_trial(trial, d, domain)))


def config_values(params: dict[str, Any]) -> dict[str, Any]:
    """Optuna params -> nested voxgan config keys."""
    out: dict[str, Any] = {}
    for d in DIMS:
        if d.param in params:
            dotted.put(out, d.key, params[d.param])
    return out


# ---- the reference recipes as points of the space ----------------------------------------------



def tutorial_params() -> dict[str, Any]:
    """The `tutorial` preset (SEED-SPEC) as Optuna params, whatever a study's space admits."""
    recipe = preset("tutorial")
    return asked(SpaceSpec(), lambda d, _: dotted.get(recipe, d.key))


def nearest(value: Any, domain: list | Between) -> Any:
    """The point of a domain closest to `value`: itself, the nearest number, or the first choice."""
    if isinstance(domain, Between):
        return type(domain.low)(min(max(value, domain.low), domain.high))
    if value in domain:
        return value
    numbers = [c for c in domain if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if isinstance(value, (int, float)) and numbers:
        return min(numbers, key=lambda c: abs(c - value))
    return domain[0]


@dataclass
class Baseline:
    params: dict[str, Any]
    deviations: dict[str, Any]
    """What the space forced away from the recipe (e.g. width 64 -> 16 in a CPU-sized study),
    so that the baseline's label stays honest."""


def baseline(space: BaseModel, recipe_name: str = "tutorial") -> Baseline:
    """A preset's recipe (`voxgan.config.PRESETS`) moved to the nearest point the space admits."""
    recipe = preset(recipe_name)
    params = asked(space, lambda d, domain: nearest(dotted.get(recipe, d.key), domain))
    deviations = {d.param: params[d.param] for d in DIMS
                  if d.param in params and params[d.param] != dotted.get(recipe, d.key)}
    return Baseline(params, deviations)


def baseline_config_values(space: BaseModel, recipe_name: str = "tutorial") -> dict[str, Any]:
    """A recipe's voxgan config keys in this space."""
    return config_values(baseline(space, recipe_name).params)
