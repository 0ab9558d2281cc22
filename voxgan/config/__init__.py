"""One typed config for a training run (`schema`), its YAML file and `key=value` overrides
(`yaml_io`), the named recipes (`presets`), the keys each kind of data source takes
(`data_keys`) and dotted keys (`dotted`)."""

from voxgan.config.presets import PRESETS, preset
from voxgan.config.schema import (
    Activation, Config, DataConfig, EvalConfig, Family, LossName, NetConfig, NormName, OptimizerName,
)
from voxgan.config.yaml_io import apply_overrides, read_yaml

__all__ = ["PRESETS", "Activation", "Config", "DataConfig", "EvalConfig", "Family", "LossName", "NetConfig",
           "NormName", "OptimizerName", "apply_overrides", "preset", "read_yaml"]
