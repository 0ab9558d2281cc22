"""The Ray Tune trainable: one trial trains voxgan's trainer and reports at its kimg marks.

A trial never crashes the study on its own account. A NaN loss, an exception or running out of
memory ends it with a last report whose `status` says so and whose `reason` says why; the
searcher turns that into a FAIL with the reason as a user attribute the dashboard shows.
"""

from __future__ import annotations

import gc
import os
import socket
import tempfile
import traceback
from pathlib import Path, PurePosixPath
from typing import Any

import ray
import torch
from ray import tune

from voxgan_search.records.trial_record import Report, Status
from voxgan_search.tuning.lineage import Copy, member_of_folder
from voxgan_search.tuning.checkpoint_store import CHECKPOINT_NAME, SAMPLES_NAME, is_file, local_copy, mesh_name
from voxgan.config import Config
from voxgan.data import VoxelDataset
from voxgan.device import precision_name
from voxgan.errors import ConfigError, Diverged
from voxgan.mesh_sheet import save_sample_sheet
from voxgan.metric_table import REPORTED
from voxgan.pictures import render_grid
from voxgan.trainer import Trainer

MESH_SAMPLES = 4
"""The first samples of the picture, also written as one 3D mesh (`voxgan.mesh_sheet`)."""


def train_trial(config: dict[str, Any], data: VoxelDataset, marks: list[float], threads: int,
                gpu_share: float = 0.0) -> None:
    """Ray Tune function trainable. `config["voxgan"]` is the trial's complete voxgan `Config`
    (built by the searcher's define-by-run space); `data` comes from the object store, loaded once
    per search. Continues from a checkpoint: Ray's, or `config["resume_from"]` when the searcher
    re-attached a trial of an interrupted run. `gpu_share`: the trial's --gpus-per-trial."""
    torch.set_num_threads(threads)
    device = None
    try:
        device = trial_device(starting_config(config).device, ray.get_gpu_ids())
        if device.type == "cuda" and 0 < gpu_share < 1:
            # Ray's fractional GPUs are bookkeeping only: a trial may take no more than its share
            torch.cuda.set_per_process_memory_fraction(gpu_share)
        if "member" in config:  # a population's member (voxgan_search.tuning.population)
            trainer, copied = start_member(config, data, device)
            train_and_evaluate(trainer, marks, stop_degenerate=False, member=member_number(), copied=copied)
        else:
            train_and_evaluate(start_trainer(config["voxgan"], data, config.get("resume_from"), device), marks,
                               stop_degenerate=config.get("stop_degenerate", True))
    except Diverged as exc:
        tune.report(Report.failed(Status.DIVERGED, str(exc), epoch=exc.epoch, kimg=exc.kimg).as_result())
    except Exception as exc:  # a trial's bug or bad luck must not end the study: report and fail it
        tune.report(Report.failed(Status.ERROR, failure_reason(exc), traceback=traceback.format_exc()[-4000:]).as_result())
    finally:
        if device is not None and device.type == "cuda":
            gc.collect()  # the trainer's tensors, then the cached blocks they leave
            torch.cuda.empty_cache()


def starting_config(config: dict[str, Any]) -> Config:
    """The trial's voxgan config as the searcher gave it (a `Config`), or as a population's member
    carries it in its Ray config (a dict: Ray Tune copies and logs a member's config)."""
    cfg = config["voxgan"]
    return cfg if isinstance(cfg, Config) else Config.from_dict(cfg)


def trial_device(configured: str, gpu_ids: list) -> torch.device:
    """Where a trial trains: on the GPU(s) Ray assigned it, never on one it merely sees.

    Ray (since ray-project/ray#62492) leaves CUDA_VISIBLE_DEVICES as it was for a trial that
    asks for no GPU, so `torch.cuda.is_available()` says nothing about what the trial may use. A
    trial with no GPU ids runs on the CPU under `device: auto` and is refused under `device:
    cuda`; with ids, Ray has narrowed CUDA_VISIBLE_DEVICES to them, so cuda:0 is the first."""
    if configured == "cpu" or (configured == "auto" and not gpu_ids):
        return torch.device("cpu")
    if not gpu_ids:
        raise ConfigError("device=cuda, but Ray gave this trial no GPU: set --gpus-per-trial (or "
                          "resources.gpus_per_trial) above 0")
    return torch.device("cuda")


def train_and_evaluate(trainer: Trainer, marks: list[float], stop_degenerate: bool = True,
                       member: int | None = None, copied: Copy | None = None) -> None:
    """The trial's budget: train to each kimg mark (the study's `Budget.marks()`), evaluating and
    reporting there. A trial continued from a checkpoint skips the marks before it (one it
    reaches exactly is reported again, and stored once). Every mark of this run is reported,
    even one that the last whole iteration already passed. The first evaluation (of several)
    also says whether the samples are degenerate (`voxgan.degeneracy`); with `stop_degenerate`
    such a trial ends there, and without, it trains on with the verdict on record. A population's
    `member` reports its number, and in its first report what it `copied`."""
    start_kimg = trainer.kimg
    for mark in marks:
        # a member paused (or copied) at a mark was evaluated there, by itself or by its source
        if mark < start_kimg or (member is not None and 0 < start_kimg and mark <= start_kimg):
            continue
        if trainer.kimg < mark:
            trainer.train_to_kimg(mark)
        reason = trainer.degeneracy() if mark == marks[0] and mark < marks[-1] else None
        report_evaluation(trainer, mark, finished=mark >= marks[-1], start_kimg=start_kimg, degenerate=reason,
                          stop=stop_degenerate, member=member, copied=copied)
        copied = None  # said once, in the first report after the copy
        if reason and stop_degenerate:
            return


CPU_OOM_MARKERS = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory")


def failure_reason(exc: Exception) -> str:
    """One line on why a trial failed, starting with "out of memory" for any allocation failure:
    torch raises OutOfMemoryError on CUDA, but a plain RuntimeError from its CPU allocator, and
    Python a MemoryError, so the type alone does not tell."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or any(m in first for m in CPU_OOM_MARKERS):
        return f"out of memory: {first or type(exc).__name__}"
    return f"{type(exc).__name__}: {first}"


def start_trainer(cfg: Config, data: VoxelDataset, resume_from: str | None, device: torch.device) -> Trainer:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        if resume_from and is_file(resume_from):  # in the storage path: a shared folder or a URI
            with local_copy(resume_from) as path:
                return Trainer.resume(path, data=data, device=device)
        return Trainer(cfg, data, device)
    with checkpoint.as_directory() as folder:
        return Trainer.resume(Path(folder) / CHECKPOINT_NAME, data=data, device=device)


def start_member(config: dict[str, Any], data: VoxelDataset, device: torch.device) -> tuple[Trainer, Copy | None]:
    """A population member's trainer: from its starting config, or from the checkpoint Ray gives
    it (its own, after a pause; another member's, after PBT chose it to copy), continued with the
    `perturb` values of its config switched in from there. Returns what it copied, if anything."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return Trainer(starting_config(config), data, device), None
    with checkpoint.as_directory() as folder:
        trainer = Trainer.resume(Path(folder) / CHECKPOINT_NAME, data=data, device=device, switch=config["perturb"])
    source = member_of_folder(PurePosixPath(checkpoint.path).parent.name)
    if source == member_number():
        return trainer, None
    switched = {e.key: e.value for e in trainer.cfg.schedule if e.shapes == trainer.shapes_seen}
    return trainer, Copy(source, trainer.kimg, switched, trainer.cfg.to_dict())


def member_number() -> int:
    """This member's Optuna trial number, from the name of its Ray trial's folder."""
    return member_of_folder(Path(tune.get_context().get_trial_dir()).name)


def report_evaluation(trainer: Trainer, mark: float, finished: bool, start_kimg: float,
                      degenerate: str | None = None, stop: bool = True, member: int | None = None,
                      copied: Copy | None = None) -> None:
    """Score the generator, save a checkpoint with a picture of its samples and a mesh of the
    first few, report them at kimg `mark` (the trainer stops at the first whole iteration past
    it), with the kimg this Ray trial started from (above 0 when it continued a checkpoint).
    `degenerate`: why its samples are degenerate, reported as the reason it ends here (with
    `stop`) or only recorded."""
    scores = trainer.evaluate()
    last_epoch = trainer.history[-1]
    report = Report(Status.FINISHED if finished else Status.RUNNING,
                    {key: scores[key] if key in scores else last_epoch[key] for key in REPORTED
                     if key in scores or key in last_epoch},  # probe_acc only where eval.probe is on
                    kimg=mark, epoch=trainer.epoch, start_kimg=start_kimg, degenerate=degenerate,
                    reason=degenerate if stop else None,
                    precision=precision_name(trainer.amp_dtype),
                    cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                    node_id=ray.get_runtime_context().get_node_id(), hostname=socket.gethostname(),
                    member=member, copy=copied.to_json() if copied else None)
    with tempfile.TemporaryDirectory() as folder:
        trainer.save(Path(folder) / CHECKPOINT_NAME)
        samples = trainer.sample(8, trainer.cfg.eval.seed).numpy()
        render_grid(samples, Path(folder) / SAMPLES_NAME, ncols=4, title=f"{mark:g} kimg, score {scores['score']:.3f}")
        save_sample_sheet(samples[:MESH_SAMPLES], Path(folder) / mesh_name(mark))
        tune.report(report.as_result(), checkpoint=tune.Checkpoint.from_directory(folder))
