"""Dotted keys (`generator.lr`): the one way a key names a value in a config, a study file's
space, an override or an error message."""

from __future__ import annotations

from typing import Any


def get(holder: Any, key: str) -> Any:
    """The value `key` names in an object of nested attributes (a `Config`, a study's space)."""
    for part in key.split("."):
        holder = getattr(holder, part)
    return holder


def put(tree: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set `key` in a nested dict, making (or copying) the dicts on its path, so that a dict
    shared with the caller's input is never changed; returns `tree`."""
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else {}
        node = node[part]
    node[leaf] = value
    return tree


def field(model: Any, key: str) -> Any:
    """The pydantic field (its annotation and bounds) that `key` names in a model class."""
    *parents, leaf = key.split(".")
    for part in parents:
        model = model.model_fields[part].annotation
    return model.model_fields[leaf]
