"""Studies on a real PostgreSQL server (`tests/pg_server.py` starts one per module on a Unix socket).

- A SIGKILLed `voxgan-search --storage postgresql://...` and `--resume` end with exactly --trials
  trials, the killed driver's trial continued from its checkpoint (the SQLite test's checks).
- `voxgan-search dashboard --storage postgresql://...` serves the study.
- Drivers taking trials from one study at the same moment never take more than its total.
- Two real `voxgan-search` processes on one study split its trials: each trial is run by exactly
  one of them, once, and the study ends with exactly --trials trials.

In CI (CI set) a server that cannot start is a failure; elsewhere these tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from pg_server import ServerUnavailable, create_database, postgres_server
from voxgan_search.coordination.slots import take, top_up
from voxgan_search.coordination.storage import connect
from voxgan_search.study.spec import Budget
from test_resume import BIN, STUDY, in_flight_rows, interrupt_and_resume

TWO_DRIVER_TRIALS = 8
TWO_DRIVERS = {**STUDY, "name": "two", "budget": {"kimg": 0.32, "eval_every_kimg": 0.032}}
"""Ten evaluations a trial: long enough that the first driver is still busy when the second has
started its Ray cluster, so both take trials."""


@pytest.fixture(scope="module")
def pg_socket() -> Iterator[Path]:
    try:
        import psycopg  # noqa: F401  (the driver: pip install 'voxgan[postgres]')

        with postgres_server() as folder:
            yield folder
    except (ServerUnavailable, ImportError) as exc:
        message = f"no PostgreSQL server for the tests: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def pg_url(pg_socket: Path) -> str:
    """A new, empty database of its own for each test."""
    return create_database(pg_socket, f"t{uuid.uuid4().hex[:12]}")


def pg_connect(url: str) -> Any:
    """A plain psycopg connection to the database at `url`: polling does not use the code under test."""
    import psycopg
    import sqlalchemy

    parts = sqlalchemy.engine.make_url(url)
    return psycopg.connect(host=parts.query["host"], user=parts.username, dbname=parts.database)


def pg_in_flight(url: str) -> Callable[[], tuple[int, dict[int, int]]]:
    """`in_flight` of the study in the database at `url`."""
    import psycopg

    def read() -> tuple[int, dict[int, int]]:
        try:
            with pg_connect(url) as con:
                return in_flight_rows(con)
        except psycopg.errors.UndefinedTable:  # the driver has not created Optuna's schema yet
            return 0, {}
    return read


def has_total(url: str) -> bool:
    """Whether the study's creator has filled its queue (and recorded the total)."""
    import psycopg

    try:
        with pg_connect(url) as con:
            return bool(con.execute("SELECT count(*) FROM study_user_attributes WHERE key = 'trials'").fetchone()[0])
    except psycopg.errors.UndefinedTable:
        return False


def test_a_killed_driver_resumes_to_exactly_the_requested_trials(pg_url, tmp_path):
    interrupt_and_resume(signal.SIGKILL, tmp_path, pg_in_flight(pg_url), storage=pg_url)
    serve_dashboard_and_check(pg_url, tmp_path / "run", trials=6)


def serve_dashboard_and_check(url: str, run: Path, trials: int) -> None:
    """`voxgan-search dashboard --storage URL` lists the study and its trials with their samples."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [str(BIN / "voxgan-search"), "dashboard", "--storage", url, "--run", str(run), "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        api = f"http://127.0.0.1:{port}/api/studies"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                studies = json.load(urllib.request.urlopen(api, timeout=5))["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
                time.sleep(0.3)
        assert [s["study_name"] for s in studies] == [STUDY["name"]]
        detail = json.load(urllib.request.urlopen(f"{api}/{studies[0]['study_id']}?after=0", timeout=10))
        assert len(detail["trials"]) == trials
        assert any(t["artifacts"] for t in detail["trials"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_drivers_taking_at_once_never_exceed_the_total(pg_url):
    """Four threads, each with its own connection, take trials as fast as they can: exactly the
    total is taken, each trial once, and no trial is added."""
    total = 24
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="race", storage=connect(pg_url))
    assert top_up(study, total) == total
    assert top_up(study, total) == 0  # a second driver with the same --trials adds none
    taken: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def driver(mine: list[int]) -> None:
        storage = connect(pg_url)
        own = optuna.load_study(study_name="race", storage=storage)
        start.wait()
        while (trial := take(own, storage)) is not None:
            mine.append(trial.number)

    threads = [threading.Thread(target=driver, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    numbers = sorted(n for mine in taken for n in mine)
    assert numbers == list(range(total)), taken
    assert sum(bool(mine) for mine in taken) >= 2, f"one thread took everything, the race was not run: {taken}"
    final = optuna.load_study(study_name="race", storage=connect(pg_url)).trials
    assert len(final) == total and all(t.state == TrialState.RUNNING for t in final)


def test_two_drivers_split_one_study(pg_url, tmp_path):
    """A second `voxgan-search --resume` on the same storage joins the first as soon as the study
    exists: they share the queue, neither touches the other's RUNNING trials (the first to find
    the queue empty leaves the other's last trials alone), and together they run exactly --trials
    trials, each once."""
    study_file = tmp_path / "two.yaml"
    study_file.write_text(yaml.safe_dump(TWO_DRIVERS))
    env = {**os.environ, "VOXGAN_CACHE": str(tmp_path / "cache")}

    def driver(name: str, *extra: str) -> subprocess.Popen:
        argv = [str(BIN / "voxgan-search"), "--study", str(study_file), "--storage", pg_url, "--out",
                str(tmp_path / name), "--trials", str(TWO_DRIVER_TRIALS), "--max-concurrent", "1", *extra]
        return subprocess.Popen(argv, env=env, stdout=open(tmp_path / f"{name}.out", "w"),
                                stderr=open(tmp_path / f"{name}.err", "w"), start_new_session=True)

    first = driver("a")
    second = None
    try:
        deadline = time.monotonic() + 90
        while not has_total(pg_url):  # the second joins once the first has created the study
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "a.err").read_text()
            time.sleep(0.1)
        second = driver("b", "--resume")
        codes = [first.wait(timeout=240), second.wait(timeout=240)]
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    logs = {name: (tmp_path / f"{name}.err").read_text() for name in "ab"}
    assert codes == [0, 0], logs
    assert "shared with the other live driver(s) of this study" in logs["b"], logs["b"]
    for name in "ab":
        summary = (tmp_path / f"{name}.out").read_text()
        assert f"study '{TWO_DRIVERS['name']}': " in summary and "Traceback" not in logs[name], (summary, logs[name])

    trials = optuna.load_study(study_name=TWO_DRIVERS["name"], storage=connect(pg_url)).trials
    assert sorted(t.number for t in trials) == list(range(TWO_DRIVER_TRIALS))
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == TWO_DRIVER_TRIALS, "params run twice"
    owners = {t.user_attrs["driver"] for t in trials}
    assert len(owners) == 2, f"one driver ran every trial: {owners}"
    # Each Ray trial is one run of one Optuna trial: one folder per trial across both drivers
    # means none was run twice (a stolen RUNNING trial would have a folder in each).
    folders = sorted(p.name for name in "ab" for p in (tmp_path / name / "ray").glob("run-*/*") if p.is_dir())
    assert folders == sorted(t.user_attrs["ray_trial_id"] for t in trials)
    marks = Budget(**TWO_DRIVERS["budget"]).marks()
    for trial in trials:
        assert [kimg for kimg, _ in trial.user_attrs["curve"]] == marks
        assert "resumed_from_kimg" not in trial.user_attrs, f"trial {trial.number} was taken over by another driver"
