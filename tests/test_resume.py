"""Interrupting a real `voxgan-search` and resuming it finishes the same study, exactly.

The search runs as a subprocess (the installed console script). Once the SQLite study shows a
finished trial and a RUNNING one with a checkpoint, the driver gets SIGINT (Ctrl-C), SIGTERM (a
scheduler's stop) or SIGKILL (an OOM killer, a lost node). `voxgan-search --resume` with the same
flags must then end the study with exactly --trials trials, none left RUNNING or WAITING, no
Optuna trial run twice, the interrupted trial continued from its checkpoint (not from its first mark),
and, after SIGKILL, the Ray processes the killed driver left behind ended.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from voxgan_search.coordination.processes import RECORD
from voxgan_search.coordination.opening import stale_running_trials
from voxgan_search.records.searcher import StudySearcher
from voxgan_search.study.space import suggest
from voxgan_search.coordination.storage import artifact_store_for, connect, create_or_load, open_existing_study, storage_url
from voxgan_search.study.spec import load_study
from conftest import kill_process_group

BIN = Path(sys.executable).parent
TRIALS = 6
MARKS = [0.032, 0.064, 0.096]  # kimg: one pass over the 32 training shapes each
STUDY = {
    "name": "resume",
    "data": {"source": "procedural", "resolution": 16, "n_shapes": 40, "test_fraction": 0.2},
    "base": {"eval": {"n_samples": 8, "max_real": 8, "c2st_epochs": 1}},
    "budget": {"kimg": MARKS[-1], "eval_every_kimg": MARKS[0]},
    "confirm": {"top": 0}, "stop_degenerate": False,  # single-run behaviour: no confirmation runs, no early stop
    "scheduler": "fifo",  # no pruning: every trial's curve must reach the last mark
    "resources": {"cpus_per_trial": 1},
    "space": {
        "batch_size": [16],
        "generator": {"width": 4, "extra_depth": {"low": 0, "high": 0}},
        "discriminator": {"width": 4, "extra_depth": {"low": 0, "high": 0}},
        "latent_size": [16, 32],
        "latent_std": {"low": 0.1, "high": 1.0},
    },
}


def in_flight(db: Path) -> tuple[int, dict[int, int]]:
    """(finished trials, {number: kimg of its checkpoint} for RUNNING trials that have one),
    read with plain SQL so that polling does not depend on the code under test."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        return in_flight_rows(con)


def in_flight_rows(con: Any) -> tuple[int, dict[int, int]]:
    """`in_flight` on an open DB-API connection to any Optuna RDB storage (SQLite, PostgreSQL)."""
    states = con.execute("SELECT number, state FROM trials").fetchall()
    attrs = con.execute("SELECT t.number, a.key, a.value_json FROM trial_user_attributes a "
                        "JOIN trials t ON t.trial_id = a.trial_id WHERE a.key IN ('checkpoint', 'kimg')").fetchall()
    finished = sum(state in ("COMPLETE", "PRUNED", "FAIL") for _, state in states)
    running = {number for number, state in states if state == "RUNNING"}
    keys: dict[int, dict[str, object]] = {}
    for number, key, value in attrs:
        keys.setdefault(number, {})[key] = json.loads(value)
    return finished, {n: keys[n]["kimg"] for n in running if "checkpoint" in keys.get(n, {}) and "kimg" in keys[n]}


def sqlite_in_flight(db: Path) -> Callable[[], tuple[int, dict[int, int]]]:
    def read() -> tuple[int, dict[int, int]]:
        try:
            return in_flight(db)
        except sqlite3.OperationalError:  # no file or schema yet, or a write holds the lock
            return 0, {}
    return read


def wait_for_interruptible(proc: subprocess.Popen, read: Callable[[], tuple[int, dict[int, int]]],
                           timeout: float = 180) -> dict[int, int]:
    """Poll `read` (`in_flight` of the study) until a trial has finished and another is RUNNING
    with a checkpoint two marks before its last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before it could be interrupted"
        finished, checkpointed = read()
        mid = {n: k for n, k in checkpointed.items() if k < MARKS[-2]}
        if finished >= 1 and mid:
            return mid
        time.sleep(0.1)
    pytest.fail("no finished trial and RUNNING checkpointed trial appeared in time")


def alive(pid: int, start: str) -> bool:
    """Whether the recorded process still runs (a zombie has ended: only its parent's wait is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_search_resumes_to_exactly_the_requested_trials(sig, tmp_path):
    interrupt_and_resume(sig, tmp_path, sqlite_in_flight(tmp_path / "run" / "study.db"))


def interrupt_and_resume(sig: signal.Signals, tmp_path: Path, read: Callable[[], tuple[int, dict[int, int]]],
                         storage: str | None = None) -> None:
    """The test above on a study in `storage` (default: the SQLite file in the output folder),
    polled with `read`."""
    study_file = tmp_path / "resume.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "run"
    argv = [str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(out), "--trials", str(TRIALS),
            "--max-concurrent", "2", "--quiet", *(["--storage", storage] if storage else [])]
    env = {**os.environ, "VOXGAN_CACHE": str(tmp_path / "cache")}
    with open(tmp_path / "first.log", "w") as log:
        # Its own session: whatever it leaves behind can be found (and ended) by process group.
        first = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        interrupted = wait_for_interruptible(first, read)
        recorded = json.loads((out / RECORD).read_text())["pids"] if sig == signal.SIGKILL else []
        assert recorded or sig != signal.SIGKILL, "the driver recorded no Ray processes"
        first.send_signal(sig)
        code = first.wait(timeout=60)
        log_text = (tmp_path / "first.log").read_text()
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert code == 130, log_text
            assert "Traceback" not in log_text, log_text
            assert not (out / RECORD).exists(), "a clean exit forgets its Ray processes"
        before = open_existing_study(storage, out, None).trials
        assert any(t.state == TrialState.RUNNING for t in before)
        if sig == signal.SIGTERM:
            assert "interrupted: " in log_text
            return  # the driver turns SIGTERM into SIGINT: resuming is the SIGINT case's, not run twice

        resumed = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True, timeout=180)
        assert resumed.returncode == 0, resumed.stderr
        left = [pid for pid, start in recorded if alive(pid, start)]
        assert not left, f"Ray processes of the killed driver still run after the resume: {left}"
    finally:
        kill_process_group(first)

    trials = open_existing_study(storage, out, None).trials
    assert len(trials) == TRIALS
    assert sorted(t.number for t in trials) == list(range(TRIALS))
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == TRIALS, "a trial's params were run twice"

    by_number = {t.number: t for t in trials}
    continued = [n for n in interrupted if by_number[n].user_attrs.get("resumed_from_kimg")]
    assert continued, f"no interrupted trial continued from its checkpoint: {interrupted}"
    for number in continued:
        trial = by_number[number]
        assert trial.user_attrs["resumed_from_kimg"] >= interrupted[number]
        # One evaluation per mark, each once: a restart from the first would repeat the early ones.
        assert [kimg for kimg, _ in trial.user_attrs["curve"]] == MARKS
        assert sorted(trial.intermediate_values) == [round(k * 1000) for k in MARKS]


def test_in_flight_reads_a_fresh_study(tmp_path):
    """The poller's SQL matches Optuna's schema (else the test above would time out, unclear why)."""
    db = tmp_path / "s.db"
    study = optuna.create_study(storage=f"sqlite:///{db}")
    study.tell(study.ask(), 1.0)
    running = study.ask()
    running.set_user_attr("checkpoint", "x.pt")
    running.set_user_attr("kimg", 0.064)
    assert in_flight(db) == (1, {1: 0.064})


def test_reattaching_restores_an_intermediate_value_a_kill_lost(tmp_path):
    """A SIGKILL between storing an evaluation's curve point and its intermediate value (the race
    the SIGKILL case above can hit): the re-attached trial's record is made whole from its curve."""
    study_file = tmp_path / "resume.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    spec = load_study(study_file)
    storage = connect(storage_url(None, tmp_path))
    study, _ = create_or_load(storage, spec.name, spec.directions, spec.objectives, None, False)
    killed = study.ask()
    killed.set_user_attr("config", spec.trial_config(suggest(killed, spec.space)).to_dict())
    killed.set_user_attr("curve", [[0.032, 0.7], [0.064, 0.6]])
    killed.report(0.7, 32)  # the second evaluation's intermediate value never reached the storage

    storage = connect(storage_url(None, tmp_path))  # the next run's driver
    study, _ = create_or_load(storage, spec.name, spec.directions, spec.objectives, None, True)
    searcher = StudySearcher(spec, study, storage, tmp_path / "ray", artifact_store_for(tmp_path),
                             stale_running_trials(study))
    assert searcher.suggest("a-new-ray-trial")["optuna_trial"] == killed.number
    assert study._storage.get_trial(killed._trial_id).intermediate_values == {32: 0.7, 64: 0.6}


@pytest.mark.parametrize("name", ["experiment_state-2026-12-07_23-26-24.json",
                                  ".beebd762-ae45-4c0e-9279-361186d3a8d1-tmp-search_gen_state-2026-12-07_23-26-24.json"],
                         ids=["state file", "temporary file"])
def test_a_copy_that_missed_a_renamed_temporary_file_logs_nothing(name, tmp_path):
    """Ray's driver-state copy failing on pyarrow's real error for a vanished `.<uuid>-` temporary
    file (Ray renamed it into place mid-copy) prints nothing; on any other missing file it prints
    its traceback, as Ray logs it."""
    import logging

    import pyarrow.fs

    from voxgan_search.coordination.ray_session import RAY_STATE_COPIERS, skip_renamed_temporary_copies

    skip_renamed_temporary_copies()
    path = tmp_path / "driver_artifacts" / name
    with pytest.raises(FileNotFoundError) as missing:
        pyarrow.fs.LocalFileSystem().open_input_stream(str(path))
    printed = []
    handler = logging.Handler()
    handler.emit = lambda record: printed.append(record)
    for logger_name in RAY_STATE_COPIERS:
        logger = logging.getLogger(logger_name)
        level = logger.level
        logger.setLevel(logging.WARNING)  # after a Ray session in this process, Ray's level is ERROR
        logger.addHandler(handler)
        try:
            logger.error("Saving experiment state to storage failed with exception: ",
                         exc_info=(missing.type, missing.value, missing.tb))
            logger.warning(f"Last sync command failed with the following error:\n{missing.exconly()}")
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert len(printed) == (0 if name.startswith(".") else 4)
