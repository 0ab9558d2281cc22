"""The data summary printed at the start of every run and by `voxgan-data show`: what was read,
how it was turned and split, and what was dropped, so that a surprising data set is seen before
hours of training rather than after."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

MAX_ROWS = 8
"""Rows of the per-file (or per-folder) table before the rest is summed into one row."""


@dataclass
class DataSummary:
    """Facts about a loaded data set; `lines()` words them."""

    name: str
    """What the source is."""
    resolution: int
    n_train: int
    n_test: int
    occupancy_train: float
    occupancy_test: float
    split: str
    """How train and test were chosen."""
    up: str = "z"
    """The up-axis rule that was applied."""
    grids: str = ""
    """The sizes of the stored grids, before resampling."""
    per_group: list[tuple[str, int, int]] = field(default_factory=list)
    """(file or folder, train shapes, test shapes)."""
    dropped_empty: int = 0
    dropped_test_copies: int = 0
    """Test shapes dropped because a training shape is identical."""
    copies_train: int = 0
    """Training shapes that repeat another training shape (kept)."""
    copies_test: int = 0
    ignored: str = ""
    notes: list[str] = field(default_factory=list)
    """Plain warnings: train and test from different files or categories, say."""
    per_class: list[tuple[str, int, int]] = field(default_factory=list)
    """(class, train shapes, test shapes) of a labelled source, every class shown."""

    def lines(self) -> list[str]:
        out = [f"data: {self.name}",
               f"  shapes: {self.n_train} train / {self.n_test} test at {self.resolution}^3"
               f"{f' (stored as {self.grids})' if self.grids else ''}, occupancy "
               f"{self.occupancy_train:.1%} train / {self.occupancy_test:.1%} test",
               f"  up axis: {self.up}",
               f"  split: {self.split}"]
        out += [f"    {label}: {train} train / {test} test" for label, train, test in _rows(self.per_group)]
        if self.per_class:
            out.append(f"  classes: {len(self.per_class)}")
            out += [f"    {label}: {train} train / {test} test" for label, train, test in self.per_class]
        out.append(f"  dropped: {self.dropped_empty} empty shapes, {self.dropped_test_copies} test shapes "
                   f"identical to a training shape")
        out.append(f"  duplicates kept: {self.copies_train} in train, {self.copies_test} in test "
                   f"(shapes identical to an earlier one on the same side)")
        if self.ignored:
            out.append(f"  ignored: {self.ignored}")
        out += [f"  note: {note}" for note in self.notes]
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def _rows(per_group: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The table, the largest groups first when it is long, the rest summed into one row."""
    if len(per_group) <= MAX_ROWS:
        return per_group
    ranked = sorted(per_group, key=lambda row: -(row[1] + row[2]))
    rest = ranked[MAX_ROWS - 1:]
    return ranked[: MAX_ROWS - 1] + [(f"{len(rest)} more", sum(r[1] for r in rest), sum(r[2] for r in rest))]


def occupancy(volumes: np.ndarray) -> float:
    """Mean share of occupied voxels (0 for no shapes)."""
    return float(volumes.mean()) if volumes.size else 0.0


def group_table(labels: list[str], train_groups: np.ndarray, test_groups: np.ndarray) -> list[tuple[str, int, int]]:
    """(label, train count, test count) for each label, from per-shape group indices."""
    train, test = Counter(train_groups.tolist()), Counter(test_groups.tolist())
    return [(label, train[index], test[index]) for index, label in enumerate(labels) if train[index] or test[index]]


def disjoint_note(table: list[tuple[str, int, int]], what: str) -> list[str]:
    """A note when train and test come from different files or folders (of several shapes each,
    so that one file per model, split per shape, is not news), naming them."""
    train = [label for label, n_train, n_test in table if n_train and not n_test]
    test = [label for label, n_train, n_test in table if n_test and not n_train]
    if not train or not test or any(n_train and n_test for _, n_train, n_test in table) or \
            all(n_train + n_test < 2 for _, n_train, n_test in table):
        return []

    def names(labels: list[str]) -> str:
        return ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")

    return [f"train and test come from different {what}: train from {names(train)}, test from {names(test)}"]
