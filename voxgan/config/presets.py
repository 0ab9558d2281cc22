"""The named recipes: `voxgan-train --preset NAME`, and the recipes every study runs first.

SEED-SPEC (defined in the README) is the Keras tutorial's specification that `tutorial` restates.
"""

from __future__ import annotations

from typing import Any

from voxgan.config.schema import Config
from voxgan.config.yaml_io import apply_overrides
from voxgan.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    # SEED-SPEC exactly: 64^3, G lr 0.0025 Adam(0.5), D lr 1e-5 Adam(0.9), batch 32, z of 200 ~ N(0, 0.33).
    "tutorial": {"data": {"resolution": 64}},
    # The paper's variations: batch 100, z ~ U(0, 1), D updated only below 80% accuracy.
    "paper": {
        "data": {"resolution": 64},
        "batch_size": 100,
        "latent_dist": "uniform",
        "d_accuracy_threshold": 0.8,
    },
    # The tutorial's networks with the changes that made them train in docs/quality.md's
    # ablation: D at G's learning rate (Adam 2.5e-3, beta1 0.5, ReLU), instance noise on D's
    # inputs, G starting at the data's occupancy, an EMA of G for sampling, and a 64-d latent.
    "reference": {
        "data": {"resolution": 64},
        "discriminator": {"lr": 0.0025, "beta1": 0.5, "activation": "relu"},
        "latent_size": 64,
        "instance_noise": 0.2,
        "g_output_init": "occupancy",
        "ema_decay": 0.99,
    },
}


def preset(name: str, overrides: list[str] | None = None) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}' (choose from {', '.join(sorted(PRESETS))})")
    return Config.from_dict(apply_overrides(PRESETS[name], overrides or []))
