"""Config: the tutorial preset, YAML round trips, overrides, and refusals that name the key."""

import pytest

from voxgan.config import Config, preset
from voxgan.errors import ConfigError


def test_tutorial_preset_is_seed_spec():
    cfg = preset("tutorial")
    assert cfg.data.resolution == 64
    assert (cfg.generator.optimizer, cfg.generator.lr, cfg.generator.beta1) == ("adam", 0.0025, 0.5)
    assert (cfg.discriminator.optimizer, cfg.discriminator.lr, cfg.discriminator.beta1) == ("adam", 1e-5, 0.9)
    assert (cfg.batch_size, cfg.latent_size, cfg.latent_dist, cfg.latent_std) == (32, 200, "normal", 0.33)
    assert (cfg.generator.activation, cfg.discriminator.activation) == ("relu", "leaky_relu")
    assert cfg.loss == "bce" and cfg.d_accuracy_threshold is None


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = preset("tutorial", ["data.resolution=32", "epochs=2", "generator.lr=1e-3", "d_accuracy_threshold=0.8"])
    assert (cfg.data.resolution, cfg.epochs, cfg.generator.lr, cfg.d_accuracy_threshold) == (32, 2, 1e-3, 0.8)
    path = tmp_path / "run.yaml"
    cfg.save(path)
    assert Config.load(path) == cfg
    assert Config.load(path, ["batch_size=8"]).batch_size == 8


@pytest.mark.parametrize(
    "values, message",
    [
        ({"generatr": {}}, "unknown config key 'generatr'"),
        ({"generator": {"lrr": 1}}, "unknown config key 'generator.lrr'"),
        ({"generator": {"lr": 0}}, "'generator.lr'"),
        ({"batch_size": 0}, "'batch_size'"),
        ({"data": {"resolution": 48}}, "'data.resolution'"),
        ({"discriminator": {"activation": "gelu"}}, "'discriminator.activation'"),
        ({"data": {"families": ["boat"]}}, "families"),
        ({"generator": {"optimizer": "lbfgs"}}, "'generator.optimizer'"),
    ],
)
def test_invalid_configs_are_refused_naming_the_key(values, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("'", "'")):
        Config.from_dict(values)


def test_bad_files_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        Config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("generator: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.load(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Config.load(scalar)
    with pytest.raises(ConfigError, match="key=value"):
        preset("tutorial", ["epochs"])
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("nope")


def test_config_reference_is_current():
    """docs/config.md is generated from the models; a changed key must regenerate it."""
    import importlib.util
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    spec = importlib.util.spec_from_file_location("make_config_reference", docs / "make_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (docs / "config.md").read_text() == module.reference(), "run: python docs/make_config_reference.py"


def test_a_partial_network_section_keeps_that_networks_tutorial_defaults():
    """`discriminator: {width: 16}` changes D's width only: D keeps lr 1e-5, beta1 0.9 and
    LeakyReLU, and does not take NetConfig's (the generator's) settings."""
    cfg = Config.from_dict({"discriminator": {"width": 16}, "generator": {"width": 8}})
    tutorial = Config()
    assert (cfg.discriminator.width, cfg.generator.width) == (16, 8)
    for net in ("generator", "discriminator"):
        for key in ("lr", "beta1", "activation", "optimizer"):
            assert getattr(getattr(cfg, net), key) == getattr(getattr(tutorial, net), key), (net, key)
    assert tutorial.discriminator.lr == 1e-5 and tutorial.discriminator.activation == "leaky_relu"
