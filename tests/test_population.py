"""Population-based training: real Ray Tune PBT and PB2 runs on a real Optuna SQLite storage.

One tiny population (16^3, four members, three evaluations each) runs through `voxgan-search`.
Then: every member is a trial with its intermediate values and lineage in the storage, a member
that copied another continued the other's exact state, an exported member replays from scratch
to its final weights and score, and no checkpoint a member could copy was deleted while the
population trained. PB2 runs on the same trainable. A population interrupted by Ctrl-C or
SIGKILL leaves no member RUNNING (after SIGKILL, once `--resume` opens the study), and `--resume`
starts a new population.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from voxgan.checkpoint import read_checkpoint
from voxgan.cli import run_cli
from voxgan.config import Config
from voxgan.trainer import Trainer
from voxgan_search.cli import dispatch as _dispatch
from voxgan_search.coordination.storage import open_existing_study
from voxgan_search.records.summary import describe_trial
from voxgan_search.records.trial_record import LINEAGE_ATTR, REASON_ATTR, TRAINED_CONFIG_ATTR
from voxgan_search.tuning.population import INTERRUPTED
from conftest import kill_process_group

BIN = Path(sys.executable).parent
MARKS = [0.064, 0.128, 0.192]  # kimg: evaluations, and where members copy (0.192 - 0.128 is 0.064 in binary
# floating point, so PBT sees its interval reached at the last report too, as on 2-kimg intervals)
RANGES = {"generator.lr": (1e-3, 1e-2), "discriminator.lr": (1e-4, 1e-2), "instance_noise": (0.0, 0.2)}
STUDY = {
    "name": "population",
    "data": {"source": "procedural", "resolution": 16, "n_shapes": 60, "test_fraction": 0.2},
    "base": {"eval": {"n_samples": 8, "max_real": 8, "c2st_epochs": 1}},
    "budget": {"kimg": MARKS[-1], "eval_every_kimg": MARKS[0]},
    "scheduler": "pbt",
    "population": {"size": 4, "perturb": {key: {"low": low, "high": high} for key, (low, high) in RANGES.items()}},
    "confirm": {"top": 0},
    "keep_checkpoints": 4,  # every member keeps its last checkpoint: the checks below open them
    "resources": {"cpus_per_trial": 1},
    "space": {
        "batch_size": [16], "latent_size": [16], "loss": ["bce"], "d_steps": 1, "ema_decay": [0.0, 0.9],
        "generator": {"width": 4, "extra_depth": {"low": 0, "high": 0}, "optimizer": ["adam"],
                      "lr": {"low": 1e-3, "high": 1e-2}},
        "discriminator": {"width": 4, "extra_depth": {"low": 0, "high": 0}, "optimizer": ["adam"],
                          "lr": {"low": 1e-4, "high": 1e-2}},
        "instance_noise": {"low": 0.0, "high": 0.2},
    },
}


def dispatch(argv: list[str]) -> int:
    return run_cli(_dispatch, argv)


def run_population(tmp_path: Path, **changes) -> Path:
    study_file = tmp_path / "population.yaml"
    study_file.write_text(yaml.safe_dump({**STUDY, **changes}))
    out = tmp_path / "run"
    assert dispatch(["--study", str(study_file), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> Path:
    return run_population(tmp_path_factory.mktemp("pbt"))


def members(out: Path) -> list[optuna.trial.FrozenTrial]:
    return open_existing_study(None, out, None).trials


def copiers(out: Path) -> list[optuna.trial.FrozenTrial]:
    found = [t for t in members(out) if t.user_attrs.get(LINEAGE_ATTR)]
    assert found, "no member copied another"
    return found


def test_each_member_is_a_trial_with_its_evaluations_and_lineage_in_the_storage(population):
    trials = members(population)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert trials[0].user_attrs.get("reference") and not any(t.user_attrs.get("baseline") for t in trials)
    assert len({t.params["g_lr"] for t in trials}) == 4  # starting points sampled from the space
    for trial in trials:
        assert sorted(trial.intermediate_values) == [round(k * 1000) for k in MARKS]
        assert trial.value == trial.intermediate_values[round(MARKS[-1] * 1000)]
    for trial in copiers(population):
        schedule = trial.user_attrs[TRAINED_CONFIG_ATTR]["schedule"]
        for copy in trial.user_attrs[LINEAGE_ATTR]:
            assert copy["from"] != trial.number and 0 <= copy["from"] < 4
            assert copy["kimg"] in [e["kimg"] for e in schedule] and MARKS[0] <= copy["kimg"] < MARKS[-1]
            for key, value in copy["values"].items():
                low, high = RANGES[key]
                assert low <= value <= high
                assert {"kimg": copy["kimg"], "key": key, "value": value} in schedule
        # the summary gives the config that trained its weights beside the params it started from
        described = describe_trial(trial)
        assert described["config"]["schedule"] == schedule and described["params"] == trial.params


def test_a_copying_member_continues_from_the_sources_exact_state(population):
    """Its checkpoint's history up to the copy is the source's, value for value (losses, times):
    the copy took the source's state as it was, and trained on from there."""
    trials = members(population)
    for trial in copiers(population):
        last = trial.user_attrs[LINEAGE_ATTR][-1]
        mine = read_checkpoint(trial.user_attrs["checkpoint"])["history"]
        source = read_checkpoint(trials[last["from"]].user_attrs["checkpoint"])["history"]
        shared = [entry for entry in mine if entry["kimg"] <= last["kimg"]]
        assert shared and shared == source[: len(shared)]
        assert len(mine) > len(shared)


def test_an_exported_member_replays_from_scratch_to_its_final_weights_and_score(population, tmp_path):
    trial = copiers(population)[0]
    assert dispatch(["export", "--run", str(population), "--trial", str(trial.number),
                     "--out", str(tmp_path / "member.yaml")]) == 0
    cfg = Config.load(tmp_path / "member.yaml")
    assert cfg.schedule, "the export holds the member's schedule"
    torch.set_num_threads(1)  # the trial's thread count: the same arithmetic
    replay = Trainer(cfg)
    for _ in replay.train_budget():
        pass
    member = read_checkpoint(tmp_path / "member.pt")
    assert replay.shapes_seen == member["shapes_seen"]
    for name in ("generator", "discriminator"):
        ours = replay.state()[name]
        assert all(torch.equal(ours[key], member[name][key]) for key in ours), name
    assert replay.evaluate()["score"] == trial.value


def test_no_checkpoint_is_deleted_while_the_population_trains(population):
    """Every copy restored its source's checkpoint (a deleted one would fail the member); once
    all had ended, each member kept its last checkpoint only."""
    for trial in members(population):
        folder = Path(trial.user_attrs["ray_trial_folder"])
        assert [p.parent for p in folder.glob("checkpoint_*/checkpoint.pt")] == [Path(trial.user_attrs["checkpoint"]).parent]


def test_pb2_trains_a_population_on_the_same_trainable(tmp_path):
    out = run_population(tmp_path, scheduler="pb2", population={**STUDY["population"], "size": 3},
                         budget={"kimg": MARKS[1], "eval_every_kimg": MARKS[0]}, keep_checkpoints=1)
    trials = members(out)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert copiers(out)
    assert sum(1 for t in trials if Path(t.user_attrs["checkpoint"]).is_file()) == 1  # retention, at the end


def first_evaluation_recorded(db: Path) -> bool:
    """A member has an intermediate value (plain SQL: polling must not depend on the code under test)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM trial_intermediate_values").fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_population_leaves_no_member_running_and_resume_starts_a_new_one(sig, tmp_path):
    study_file = tmp_path / "population.yaml"
    study_file.write_text(yaml.safe_dump({**STUDY, "population": {**STUDY["population"], "size": 2},
                                          "budget": {"kimg": 0.96, "eval_every_kimg": 0.048}}))
    out = tmp_path / "run"
    argv = [str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(out), "--quiet"]
    env = {**os.environ, "VOXGAN_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not first_evaluation_recorded(out / "study.db"):
            assert first.poll() is None and time.monotonic() < deadline, "the population never evaluated"
            time.sleep(0.2)
        first.send_signal(sig)
        code = first.wait(timeout=60)
        stderr = first.stderr.read()
        assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), stderr
        if sig == signal.SIGINT:
            assert "Traceback" not in stderr and "marked FAIL" in stderr
            assert [(t.state, t.user_attrs[REASON_ATTR]) for t in members(out)] == [(TrialState.FAIL, INTERRUPTED)] * 2
        resumed = subprocess.run([*argv, "--resume", "--set", "budget.kimg=0.096"], env=env, capture_output=True,
                                 text=True, timeout=180)
        assert resumed.returncode == 0, resumed.stderr
        assert "population-based training restarts" in resumed.stderr
    finally:
        kill_process_group(first)
    trials = members(out)
    assert [t.state for t in trials] == [TrialState.FAIL] * 2 + [TrialState.COMPLETE] * 2
    assert all(t.user_attrs[REASON_ATTR] == INTERRUPTED for t in trials[:2])
    assert trials[2].user_attrs.get("reference"), "the new population starts with the reference recipe"
