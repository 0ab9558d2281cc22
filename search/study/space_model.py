"""The types of the space table, and the study file's `space:` section built from it.

A study file narrows a dimension with the same vocabulary the table uses: a list of choices (a
single value fixes it) or `{low, high}`. Each value is checked against the voxgan config key the
dimension sets, with that key's own type and bounds, so the space cannot admit a value the
trainer would refuse, and the error names the study key (`space.generator.lr.low`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, create_model, field_validator, model_validator

from voxgan.config import Config, dotted


@dataclass(frozen=True)
class Between:
    """A numeric range; `log` samples on a log scale, `integer` asks for integers."""

    low: float
    high: float
    log: bool = False
    integer: bool = False


@dataclass(frozen=True)
class Dim:
    """One dimension of the space: an Optuna parameter and the config key it sets."""

    param: str
    key: str
    default: tuple | Between
    when: tuple[str, tuple] | None
    """(parameter, values): asked only when that earlier parameter took one of the values."""
    study_key: str
    """Where a study file narrows it, e.g. `generator.adadelta_lr`."""
    note: str = ""

    def domain(self, space: BaseModel) -> list | Between:
        """This dimension's choices or range in a study's (validated) space."""
        value = dotted.get(space, self.study_key)
        if isinstance(value, BaseModel):
            return Between(value.low, value.high, self.default.log, self.default.integer)  # type: ignore[union-attr]
        return list(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def config_field_type(key: str) -> Any:
    """The annotated type (with its bounds) of a dotted voxgan config key."""
    field = dotted.field(Config, key)
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


def config_choices(key: str) -> tuple:
    """Every value a voxgan config key admits, for a key of a `Literal` type or bool: the space's
    default choices for it, so that they cannot drift from the config."""
    annotation = dotted.field(Config, key).annotation
    if annotation is bool:
        return (False, True)
    if get_origin(annotation) is not Literal:
        raise TypeError(f"config key {key} has no fixed set of values ({annotation}); give its choices")
    return get_args(annotation)


def _as_list(value: Any) -> Any:
    """A single value fixes a dimension: `loss: bce` means `loss: [bce]`."""
    return value if isinstance(value, list) else [value]


def _distinct_choices(values: list) -> list:
    if not values:
        raise ValueError("an empty list of choices leaves nothing to search")
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"choices repeat: {values}")
    return values


def _fixed_range(value: Any) -> Any:
    """A single number fixes a range: `lr: 0.001` means `{low: 0.001, high: 0.001}`."""
    return {"low": value, "high": value} if isinstance(value, (int, float)) else value


def _range_model(d: Dim, value_type: Any) -> type[BaseModel]:
    """`{low, high}` for one range dimension, ordered, and above 0 on a log scale."""
    log = d.default.log  # type: ignore[union-attr]

    def single(cls: Any, value: Any) -> Any:
        return _fixed_range(value)

    def ordered(self: Any) -> Any:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if log and self.low <= 0:
            raise ValueError(f"a log-scale range must be above 0, got low {self.low}")
        return self

    return create_model(f"Range_{d.param}", __base__=_Strict, low=(value_type, ...), high=(value_type, ...),
                        __validators__={"single": model_validator(mode="before")(single),
                                        "ordered": model_validator(mode="after")(ordered)})


def _field(d: Dim) -> tuple[Any, Any]:
    """(type, default) of one dimension in the study file's space model."""
    value_type = config_field_type(d.key)
    if isinstance(d.default, Between):
        model = _range_model(d, value_type)
        return model, model(low=d.default.low, high=d.default.high)
    return list[value_type], list(d.default)


def study_space_model(dims: tuple[Dim, ...]) -> type[BaseModel]:
    """The pydantic model of a study file's `space:` section, nested like the study keys."""
    tree: dict[str, Any] = {}
    for d in dims:
        dotted.put(tree, d.study_key, _field(d))
    return _build("SpaceSpec", tree)


def _build(name: str, tree: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    choices: list[str] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            sub = _build(f"{name}_{key}", value)
            fields[key] = (sub, sub())
        else:
            fields[key] = value
            if not isinstance(value[1], BaseModel):
                choices.append(key)
    validators = {}
    if choices:
        validators = {"as_list": field_validator(*choices, mode="before")(_as_list),
                      "distinct": field_validator(*choices)(_distinct_choices)}
    return create_model(name, __base__=_Strict, __validators__=validators, **fields)
