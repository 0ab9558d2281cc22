"""The Ray Tune trainable: one trial trains voxgan's trainer and reports every few epochs.

A trial never crashes the study on its own account. A NaN loss, an exception or running out of
memory ends it with a last report whose `status` says so and whose `reason` says why; the
searcher turns that into a FAIL with the reason as a user attribute the dashboard shows.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from pathlib import Path
from typing import Any

import torch
from ray import tune

from search.objective import with_objectives
from voxgan.config import Config
from voxgan.data import VoxelDataset
from voxgan.errors import Diverged
from voxgan.metric_table import REPORTED
from voxgan.pictures import render_grid
from voxgan.trainer import Trainer

CHECKPOINT_NAME = "checkpoint.pt"
SAMPLES_NAME = "samples.png"


def train_trial(config: dict[str, Any], data: VoxelDataset, max_epochs: int, eval_every: int, threads: int) -> None:
    """Ray Tune function trainable. `config["voxgan"]` is the trial's complete voxgan config
    (built by the searcher's define-by-run space); `data` comes from the object store, loaded once
    per search. Continues from a checkpoint: Ray's, or `config["resume_from"]` when the searcher
    re-attached a trial of an interrupted run."""
    torch.set_num_threads(threads)
    try:
        train_and_evaluate(start_trainer(Config.from_dict(config["voxgan"]), data, config.get("resume_from")),
                           max_epochs, eval_every)
    except Diverged as exc:
        tune.report({"status": "diverged", "reason": str(exc), "epoch": exc.epoch, "score": float("nan")})
    except Exception as exc:  # a trial's bug or bad luck must not end the study: report and fail it
        tune.report({"status": "error", "reason": failure_reason(exc), "traceback": traceback.format_exc()[-4000:],
                     "score": float("nan")})


def train_and_evaluate(trainer: Trainer, max_epochs: int, eval_every: int) -> None:
    """The trial's budget: train to `max_epochs`, evaluating and reporting every `eval_every`
    epochs and at the end. The budget's unit (epochs) lives here and in the study's `budget`."""
    start_epoch = trainer.epoch
    while trainer.epoch < max_epochs:
        trainer.train_epoch()
        if trainer.epoch % eval_every == 0 or trainer.epoch == max_epochs:
            report_evaluation(trainer, finished=trainer.epoch >= max_epochs, start_epoch=start_epoch)


CPU_OOM_MARKERS = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory")


def failure_reason(exc: Exception) -> str:
    """One line on why a trial failed, starting with "out of memory" for any allocation failure:
    torch raises OutOfMemoryError on CUDA, but a plain RuntimeError from its CPU allocator, and
    Python a MemoryError, so the type alone does not tell."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or any(m in first for m in CPU_OOM_MARKERS):
        return f"out of memory: {first or type(exc).__name__}"
    return f"{type(exc).__name__}: {first}"


def start_trainer(cfg: Config, data: VoxelDataset, resume_from: str | None) -> Trainer:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        if resume_from and Path(resume_from).is_file():
            return Trainer.resume(resume_from, data=data)
        return Trainer(cfg, data)
    with checkpoint.as_directory() as folder:
        return Trainer.resume(Path(folder) / CHECKPOINT_NAME, data=data)


def report_evaluation(trainer: Trainer, finished: bool, start_epoch: int) -> None:
    """Score the generator, save a checkpoint with a picture of its samples, report both, with
    the epoch this Ray trial started from (above 0 when it continued a checkpoint)."""
    scores = with_objectives(trainer.evaluate())
    last_epoch = trainer.history[-1]
    metrics = {key: scores[key] if key in scores else last_epoch[key] for key in REPORTED}
    metrics.update(epoch=trainer.epoch, start_epoch=start_epoch, status="finished" if finished else "running",
                   cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    with tempfile.TemporaryDirectory() as folder:
        trainer.save(Path(folder) / CHECKPOINT_NAME)
        render_grid(trainer.sample(8, trainer.cfg.eval.seed).numpy(), Path(folder) / SAMPLES_NAME, ncols=4,
                    title=f"epoch {trainer.epoch}, score {scores['score']:.3f}")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
