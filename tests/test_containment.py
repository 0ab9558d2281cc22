"""A trial that diverges, raises or runs out of memory ends FAIL with its reason; the study goes on.

One real study run (Ray Tune + Optuna SQLite, through the CLI in-process) over a study prepared
with three bad trials and two ordinary ones:

- diverging: z ~ N(0, 1e38) overflows to inf in float32, NaN losses from the first batch;
- raising: a trial an interrupted run left RUNNING whose checkpoint file is corrupt (a real
  failure mode: a disk that filled up, a partial copy of the run folder). The searcher re-attaches
  it, and the trainable's `Trainer.resume` raises CheckpointError. No valid point of the space
  makes the trainer itself raise: validation refuses what the networks cannot be built from;
- out of memory: generator width 1024 with a latent of 4096 (both within the validated ranges)
  needs a 2 GiB weight for its first layer. Ray's processes start with their data segment capped
  at 2 GiB (the driver keeps its own limit: under the cap it could itself crash), so the CPU
  allocator refuses the weight at once, as it would on a smaller machine, instead of eating a
  shared machine's memory.
"""

from __future__ import annotations

import resource
import warnings

import optuna
import pytest
import ray
import yaml
from optuna.trial import TrialState

from voxgan_search.cli import dispatch as _dispatch
from voxgan_search.study.space import suggest
from voxgan_search.coordination.storage import DB_NAME, open_existing_study
from voxgan_search.study.spec import load_study
from voxgan.cli import run_cli

STUDY = {
    "name": "containment",
    "data": {"source": "procedural", "resolution": 16, "n_shapes": 40, "test_fraction": 0.2},
    "base": {"eval": {"n_samples": 8, "max_real": 8, "c2st_epochs": 1}},
    "budget": {"kimg": 0.064, "eval_every_kimg": 0.032},
    "confirm": {"top": 0}, "stop_degenerate": False,  # single-run behaviour: no confirmation runs, no early stop
    "scheduler": "fifo",
    "resources": {"cpus_per_trial": 1},
    "space": {
        "batch_size": [16],
        "generator": {"width": [4, 1024], "extra_depth": {"low": 0, "high": 0}, "optimizer": "adam"},
        "discriminator": {"width": 4, "extra_depth": {"low": 0, "high": 0}, "optimizer": "adam"},
        "latent_size": [16, 4096],
        "latent_std": {"low": 0.1, "high": 1e38},
        "loss": "bce",
        "d_accuracy_threshold": None,
    },
}
ORDINARY = {
    "batch_size": 16, "latent_size": 16, "latent_dist": "normal", "latent_std": 0.3, "d_accuracy_threshold": None,
    "loss": "bce", "g_optimizer": "adam", "g_lr": 1e-3, "g_beta1": 0.5, "g_activation": "relu", "g_width": 4,
    "g_extra_depth": 0, "d_optimizer": "adam", "d_lr": 1e-3, "d_beta1": 0.5, "d_activation": "leaky_relu",
    "d_width": 4, "d_extra_depth": 0,
}
DIVERGING = {**ORDINARY, "latent_std": 1e38}
HUGE = {**ORDINARY, "g_width": 1024, "latent_size": 4096}
MEMORY_CAP = 2 << 30
TRIALS = 5


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> list[optuna.trial.FrozenTrial]:
    root = tmp_path_factory.mktemp("containment")
    study_file = root / "containment.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out = root / "run"
    out.mkdir()
    spec = load_study(study_file)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared = optuna.create_study(study_name=spec.name, storage=f"sqlite:///{out / DB_NAME}", directions=spec.directions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        prepared.set_metric_names(spec.objectives)

    # An interrupted run's trial, RUNNING, with its config and a checkpoint that is not one.
    prepared.enqueue_trial(ORDINARY, user_attrs={"forced": "raise"})
    orphan = prepared.ask()
    orphan.set_user_attr("config", spec.trial_config(suggest(orphan, spec.space)).to_dict())
    corrupt = root / "checkpoint.pt"
    corrupt.write_bytes(b"\x80\x02 half a pickle")
    orphan.set_user_attr("checkpoint", str(corrupt))
    prepared.enqueue_trial(DIVERGING, user_attrs={"forced": "diverge"})
    prepared.enqueue_trial(HUGE, user_attrs={"forced": "oom"})
    for lr in (1e-3, 3e-4):  # the ordinary trials are enqueued too: the sampler could pick width 1024
        prepared.enqueue_trial({**ORDINARY, "g_lr": lr})

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    start_ray = ray.init

    def start_capped_ray(*args, **kwargs):
        """Ray's processes start under the cap and keep it; the driver (this test process, with
        everything earlier tests loaded) gets its own limit back at once, so that only the trials
        can run out of memory."""
        try:
            return start_ray(*args, **kwargs)
        finally:
            resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))

    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_CAP, hard))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ray, "init", start_capped_ray)
            argv = ["--study", str(study_file), "--out", str(out), "--trials", str(TRIALS), "--max-concurrent", "2",
                    "--quiet", "--resume"]
            assert run_cli(_dispatch, argv) == 0
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
    return open_existing_study(None, out, None).trials


def forced(trials: list[optuna.trial.FrozenTrial], kind: str) -> optuna.trial.FrozenTrial:
    [trial] = [t for t in trials if t.user_attrs.get("forced") == kind]
    return trial


def test_the_study_ran_to_its_trial_count(study):
    assert len(study) == TRIALS
    assert not [t.number for t in study if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_diverged_trial_fails_with_its_reason(study):
    trial = forced(study, "diverge")
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("diverged at epoch 1")


def test_raising_trial_fails_with_the_exception(study):
    trial = forced(study, "raise")
    assert trial.state == TrialState.FAIL
    reason = trial.user_attrs["fail_reason"]
    assert reason.startswith("CheckpointError: ") and "not a voxgan checkpoint" in reason, reason


def test_out_of_memory_trial_fails_as_out_of_memory(study):
    trial = forced(study, "oom")
    assert trial.state == TrialState.FAIL
    reason = trial.user_attrs["fail_reason"]
    assert reason.startswith("out of memory: ") and "DefaultCPUAllocator" in reason, reason


def test_the_other_trials_went_on(study):
    others = [t for t in study if "forced" not in t.user_attrs]
    assert len(others) == TRIALS - 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in others), [t.state for t in others]
    assert any(t.state == TrialState.COMPLETE for t in others)
