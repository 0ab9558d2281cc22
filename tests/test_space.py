"""The space table: one entry adds a dimension everywhere, the baseline is read from the
`tutorial` preset, and docs/search.md shows the table as it is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
import pytest
from pydantic import ValidationError

from voxgan.models import optimizers_using
from voxgan_search.study import space
from voxgan_search.study.space_model import study_space_model
from voxgan import config
from voxgan.config import Config

DOCS = Path(__file__).resolve().parents[1] / "docs"


def space_table_module():
    spec = importlib.util.spec_from_file_location("make_space_table", DOCS / "make_space_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_space_table_is_current():
    module = space_table_module()
    text = (DOCS / "search.md").read_text()
    assert module.with_space_table(text) == text, "run: python docs/make_space_table.py"


def test_one_entry_adds_a_conditional_dimension(monkeypatch):
    """A choice for both networks, asked only with Adam/AdamW: suggest, narrowing, baseline, docs."""
    entry = space.per_net("beta2", (0.99, 0.999), when=("optimizer", optimizers_using("beta2")))
    monkeypatch.setattr(space, "DIMS", space.DIMS + entry)
    monkeypatch.setattr(space, "TABLE", space.TABLE + (entry,))
    model = study_space_model(space.DIMS)
    narrowed = model.model_validate({"generator": {"beta2": 0.99}, "discriminator": {"beta2": [0.99]}})

    study = optuna.create_study()
    study.enqueue_trial({"g_optimizer": "adam", "d_optimizer": "sgd"})
    trial = study.ask()
    values = space.suggest(trial, narrowed)
    assert trial.params["g_beta2"] == 0.99 and "d_beta2" not in trial.params
    assert values["generator"]["beta2"] == 0.99 and "beta2" not in values["discriminator"]
    assert Config.from_dict(values).generator.beta2 == 0.99

    baseline = space.baseline(narrowed)  # the tutorial's Adam asks both; its beta2 is 0.999
    assert baseline.params["g_beta2"] == 0.99 and baseline.deviations["d_beta2"] == 0.99
    with pytest.raises(ValidationError, match="generator.beta2"):  # the config key's own bound: < 1
        model.model_validate({"generator": {"beta2": [1.5]}})
    assert "`g_beta2`, `d_beta2`" in space_table_module().space_table()


def test_one_entry_adds_a_log_scale_range(monkeypatch):
    entry = space.dim("real_label", space.Between(0.8, 1.0, log=True))
    monkeypatch.setattr(space, "DIMS", space.DIMS + entry)
    model = study_space_model(space.DIMS)
    trial = optuna.create_study().ask()
    value = space.suggest(trial, model.model_validate({"real_label": {"low": 0.9, "high": 0.95}}))["real_label"]
    assert 0.9 <= value <= 0.95 and trial.distributions["real_label"].log
    with pytest.raises(ValidationError, match="real_label.high"):  # the config key's own bound: <= 1
        model.model_validate({"real_label": {"low": 0.9, "high": 1.5}})


def test_the_baseline_is_read_from_the_tutorial_preset(monkeypatch):
    assert space.tutorial_params()["g_lr"] == Config().generator.lr
    monkeypatch.setitem(config.PRESETS, "tutorial", {"data": {"resolution": 64}, "generator": {"lr": 0.001}})
    assert space.tutorial_params()["g_lr"] == 0.001
    assert space.baseline(space.SpaceSpec()).params["g_lr"] == 0.001
