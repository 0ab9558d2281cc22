"""A population member's identity and its copies, as the trainable reports them and the study keeps them.

Population-based training gives a member that copies another the other's Ray config, so the
config stops saying which member a Ray trial is. Its folder does not change: voxgan names it
`member-<Optuna trial number>` when the trial is created, and a checkpoint's folder sits inside
the folder of the member that wrote it. So a member knows itself, and whom it copied, by folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

MEMBER_PREFIX = "member-"


def member_folder(number: int) -> str:
    """The Ray trial folder's name of the member that is Optuna trial `number`."""
    return f"{MEMBER_PREFIX}{number}"


def member_of_folder(name: str) -> int:
    """The Optuna trial number a member's folder names (`member_folder`)."""
    if not name.startswith(MEMBER_PREFIX) or not name[len(MEMBER_PREFIX):].isdigit():
        raise ValueError(f"{name} is not a population member's folder")
    return int(name[len(MEMBER_PREFIX):])


@dataclass(frozen=True)
class Copy:
    """A member took member `source`'s weights and state at `kimg` and switched to `values`
    there; `config` is what it now trains under: `source`'s starting config with every switch of
    the weights' history as its schedule, so that it replays from scratch."""

    source: int
    kimg: float
    values: dict[str, float]
    config: dict[str, Any]

    def to_json(self) -> str:
        """One string: Ray Tune carries a report's values flat, and this nests."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Copy:
        return cls(**json.loads(text))

    def lineage_entry(self) -> dict[str, Any]:
        """What the member's `lineage` attribute keeps of it."""
        return {"kimg": self.kimg, "from": self.source, "values": self.values}
