"""The study files and configs that ship with the repository load, so that a schema change
cannot leave the copies users start from, or the configs docs/results.md retrains, broken."""

from pathlib import Path

import pytest

from voxgan_search.study.space import baseline_config_values
from voxgan_search.study.spec import load_study
from voxgan.config import Config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_study_loads(path):
    assert load_study(path).name == path.stem


@pytest.mark.parametrize("recipe", ["tutorial", "reference"])
def test_the_documented_recipes_are_the_studys_recipe_trials(recipe):
    """docs/results.md retrains trials 0 and 1 of the chairs32-cpu study (at its own kimg)."""
    spec = load_study(ROOT / "studies" / "chairs32-cpu.yaml")
    documented = Config.load(ROOT / "docs" / "configs" / f"chairs32-cpu-{recipe}.yaml", [f"kimg={spec.budget.kimg}"])
    assert documented == spec.trial_config(baseline_config_values(spec.space, recipe))


@pytest.mark.parametrize("path", sorted((ROOT / "docs" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_documented_config_loads(path):
    """The docs retrain these files by name; a schema change must fail here, not in a reader's run."""
    Config.load(path)  # raises on an unknown key or a value out of range
