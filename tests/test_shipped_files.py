"""The study files and configs that ship with the repository load, so that a schema change
cannot leave the copies users start from, or the configs docs/results.md retrains, broken."""

from pathlib import Path

import pytest

from search.space import baseline_config_values
from search.study import load_study
from voxgan.config import Config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_study_loads(path):
    assert load_study(path).name == path.stem


def test_the_documented_baseline_is_the_studys_baseline_trial():
    spec = load_study(ROOT / "studies" / "chairs16.yaml")
    assert Config.load(ROOT / "docs" / "configs" / "chairs16-baseline.yaml") == spec.trial_config(
        baseline_config_values(spec.space))


def test_the_documented_best_config_loads():
    best = Config.load(ROOT / "docs" / "configs" / "chairs16-best.yaml")
    assert best.loss == "hinge" and best.discriminator.lr > 1000 * best.generator.lr
