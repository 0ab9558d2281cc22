"""A study keeps exactly the checkpoints its retention rule says, in a storage path outside --out.

`keep_checkpoints: 1`, and the storage path is a `file://` URI (the pyarrow code path an `s3://`
one takes) outside --out. A real `voxgan-search` is interrupted (SIGINT) while a trial runs with
a checkpoint, then `--resume`d to its trial count. The running trial's checkpoint must survive
the interruption and the trial continue from it; at the end the storage path must hold one
checkpoint, the best trial's (the replaced one of the interrupted run included, nothing else),
the summary must report it, and `export` must copy it (and export another trial's config alone).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import optuna
import yaml
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
from test_resume import MARKS, STUDY as RESUME_STUDY, sqlite_in_flight, wait_for_interruptible

from voxgan.metric_table import REPORTED
from voxgan_search.records.evaluation_record import EvaluationRecord
from voxgan_search.records.ranking import best_trial
from voxgan_search.records.trial_record import CHECKPOINT_ATTR, Report, Status
from voxgan_search.coordination.storage import open_existing_study

BIN = Path(sys.executable).parent
TRIALS = 5
STUDY = {**RESUME_STUDY, "name": "retention", "keep_checkpoints": 1}


def local(location: str) -> Path:
    """The local file a `file://` location names."""
    return Path(urlparse(location).path)


def test_only_running_and_best_trials_keep_checkpoints(tmp_path):
    study_file = tmp_path / "retention.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out, store = tmp_path / "run", tmp_path / "store"
    argv = [str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(out), "--trials", str(TRIALS),
            "--max-concurrent", "2", "--storage-path", f"file://{store}", "--quiet"]
    env = {**os.environ, "VOXGAN_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        interrupted = wait_for_interruptible(first, sqlite_in_flight(out / "study.db"))
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    running = {t.number: t.user_attrs["checkpoint"] for t in open_existing_study(None, out, None).trials
               if t.state == TrialState.RUNNING and "checkpoint" in t.user_attrs}
    assert set(interrupted) <= set(running)
    for location in running.values():
        assert location.startswith(f"file://{store}/run-")
        assert local(location).is_file(), "a running trial's checkpoint was deleted"

    resumed = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    study = open_existing_study(None, out, None)
    trials = {t.number: t for t in study.trials}
    assert len(trials) == TRIALS and all(t.state == TrialState.COMPLETE for t in trials.values())
    continued = [n for n in interrupted if trials[n].user_attrs.get("resumed_from_kimg")]
    assert continued, f"no interrupted trial continued from its checkpoint: {interrupted}"
    assert all([k for k, _ in trials[n].user_attrs["curve"]] == MARKS for n in continued)

    best = best_trial(study)
    kept = local(best.user_attrs["checkpoint"])
    assert sorted(store.rglob("*.pt")) == [kept]
    assert not any(local(location).exists() for location in running.values() if local(location) != kept)
    size = sum(f.stat().st_size for f in kept.parent.iterdir())
    assert json.loads((out / "summary.json").read_text())["checkpoints"] == {"trials": 1, "bytes": size}
    assert f"checkpoints: 1 trial(s) keep one, {size / 1e6:.1f} MB on disk" in resumed.stdout

    export = [str(BIN / "voxgan-search"), "export", "--run", str(out), "--out"]
    assert subprocess.run([*export, str(tmp_path / "best.yaml")], env=env, timeout=60).returncode == 0
    assert (tmp_path / "best.pt").read_bytes() == kept.read_bytes()
    other = next(n for n in trials if n != best.number)
    done = subprocess.run([*export, str(tmp_path / "other.yaml"), "--trial", str(other)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and (tmp_path / "other.yaml").is_file() and not (tmp_path / "other.pt").exists()
    assert "checkpoint was deleted" in done.stderr


def write_checkpoint(trial_folder: Path, name: str) -> Path:
    """A checkpoint as a worker persists it: `<trial folder>/<checkpoint_...>/checkpoint.pt`."""
    file = trial_folder / name / "checkpoint.pt"
    file.parent.mkdir(parents=True)
    file.write_bytes(b"state")
    return file


def test_a_continued_trial_leaves_no_checkpoint_in_its_interrupted_folder(tmp_path):
    """The worker of an interrupted run can persist a checkpoint after its driver's last record,
    even after `--resume` has tidied that folder; once the continued trial records its own first
    checkpoint, the interrupted run's folder must hold none, the late one included."""
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    old_run, new_run = tmp_path / "store" / "run-1", tmp_path / "store" / "run-2"
    continued_from = write_checkpoint(old_run / "trial_a", "checkpoint_000001")
    trial.set_user_attr(CHECKPOINT_ATTR, str(continued_from))
    late = write_checkpoint(old_run / "trial_a", "checkpoint_000002")
    unrelated = write_checkpoint(old_run / "trial_b", "checkpoint_000001")

    record = EvaluationRecord(trial, "trial_c", [[2.0, 0.5]], new_run, FileSystemArtifactStore(str(tmp_path / "art")),
                              report_values=True)
    new = write_checkpoint(new_run / "trial_c", "checkpoint_000000")
    metrics = {name: 0.4 for name in REPORTED}
    record.add({**Report(Status.RUNNING, metrics, kimg=4.0).as_result(), "checkpoint_dir_name": "checkpoint_000000"},
               "score")

    assert trial.user_attrs[CHECKPOINT_ATTR] == str(new)
    assert not continued_from.exists() and not late.exists()
    assert sorted((tmp_path / "store").rglob("*.pt")) == sorted([new, unrelated])
