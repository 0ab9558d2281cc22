"""Which `DataConfig` keys act on which kind of source: the one table behind refusing keys that
would do nothing (a study's `n_shapes` with a file source, say) and leaving them out of saved
configs.

A config alone tells only whether the source is procedural or a path; whether a path is a
3D ShapeNets tree or voxel files is known once the loader has looked at it, and it checks again.
"""

from __future__ import annotations

from collections.abc import Set

from pydantic import BaseModel

PROCEDURAL = "procedural"
"""The embedded source's name in `data.source`, and its kind here."""
SHAPENETS = "3D ShapeNets"
FILES = "voxel files"
ALL = frozenset({PROCEDURAL, SHAPENETS, FILES})

APPLIES_TO: dict[str, frozenset[str]] = {
    "source": ALL,
    "category": frozenset({SHAPENETS}),
    "rotations": frozenset({SHAPENETS}),
    "resolution": ALL,
    "up_axis": frozenset({SHAPENETS, FILES}),
    "fraction": ALL,
    "test_fraction": frozenset({PROCEDURAL, FILES}),
    "split": frozenset({FILES}),
    "pattern": frozenset({FILES}),
    "max_files": frozenset({FILES}),
    "n_shapes": frozenset({PROCEDURAL}),
    "families": frozenset({PROCEDURAL}),
    "seed": frozenset({PROCEDURAL, FILES}),
    "cache_dir": frozenset({SHAPENETS}),
    "classes": frozenset({FILES}),
    "class_names": frozenset({FILES}),
}


def source_kinds(source: str) -> frozenset[str]:
    """The kinds of source `source` may be before the loader looks at the path."""
    return frozenset({PROCEDURAL}) if source == PROCEDURAL else frozenset({SHAPENETS, FILES})


def active_keys(kinds: Set[str]) -> set[str]:
    """The keys that act on at least one of `kinds`."""
    return {key for key, applies in APPLIES_TO.items() if applies & kinds}


def refuse_inert_keys(cfg: BaseModel, kinds: Set[str], error: type[Exception]) -> None:
    """Raise `error` naming the first key set away from its default that acts on none of `kinds`."""
    defaults = type(cfg).model_fields
    for key in APPLIES_TO.keys() - active_keys(kinds):
        value = getattr(cfg, key)
        if value != defaults[key].get_default(call_default_factory=True):
            applies = " and ".join(sorted(APPLIES_TO[key]))
            raise error(f"data.{key}={value} has no effect on {describe(kinds)} ({cfg.source}): it acts on "
                        f"{applies} sources only; remove it")


def describe(kinds: Set[str]) -> str:
    """'the procedural source', 'a file or folder source', 'a 3D ShapeNets source'..."""
    if kinds == {PROCEDURAL}:
        return "the procedural source"
    if kinds == {SHAPENETS, FILES}:
        return "a file or folder source"
    return f"a {' or '.join(sorted(kinds))} source"
