"""Exporting a trial: its config as YAML for `voxgan-train --config`, its checkpoint beside it."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from voxgan.config import Config
from voxgan.errors import VoxganError
from voxgan_search.records.confirmation import pick_run
from voxgan_search.records.ranking import best_trial, trial_by_number
from voxgan_search.records.trial_record import CHECKPOINT_ATTR, trained_config
from voxgan_search.tuning.checkpoint_store import copy_to_local, is_file


def export_best(study: optuna.Study, out: Path, number: int | None = None) -> tuple[FrozenTrial, Path, Path | None]:
    """Write the confirmed pick's config (its best-scoring retraining, `confirmation.pick_run`; the
    search's best trial when the study has no complete confirmation), or trial `number`'s (e.g. 0
    for the tutorial baseline), as
    YAML at `out` and copy its checkpoint beside it (`<stem>.pt`) from the storage path. Refuses to
    overwrite files. A trial whose checkpoint is gone (outside the best `keep_checkpoints`
    finished trials) exports its config alone, for `voxgan-train --config`: the third item is then None."""
    trial = (pick_run(study) or best_trial(study)) if number is None else trial_by_number(study, number)
    checkpoint_src = trial.user_attrs.get(CHECKPOINT_ATTR)
    checkpoint_out = out.with_suffix(".pt") if checkpoint_src and is_file(checkpoint_src) else None
    for path in (out, checkpoint_out):
        if path is not None and path.exists():
            raise VoxganError(f"{path}: already exists; choose another --out")
    cfg = Config.from_dict(trained_config(trial))  # a population member's with its schedule
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    if checkpoint_out is not None:
        copy_to_local(checkpoint_src, checkpoint_out)
    return trial, out, checkpoint_out
