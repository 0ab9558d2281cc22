"""A search on a real two-node Ray cluster that loses its worker node in the middle of the study.

A head node and a worker node (each its own raylet with 1 CPU, both on this machine, joined as on
two machines) run `voxgan-search --address`, with checkpoints in a storage path outside --out (a
folder both nodes reach, as an NFS mount would be). Once a trial on the worker node has a
checkpoint, the worker node is killed (SIGKILL of all its processes: a machine losing power).
The study must still reach its trial count, the lost trial end FAIL with a reason (never stay
RUNNING), the driver exit cleanly, trials have run on both nodes, every checkpoint be named in the
storage path, only the best 3 trials (the default keep_checkpoints) keep one, and the best
trial export and retrain.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
import yaml
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.local_cluster import local_cluster, worker_node  # noqa: E402
from voxgan_search.records.ranking import ranked_trials  # noqa: E402
from voxgan_search.coordination.storage import open_existing_study  # noqa: E402
from test_gpu_scheduling import STUDY as PACKING  # noqa: E402

BIN = Path(sys.executable).parent
TRIALS = 5
STUDY = {**PACKING, "name": "cluster", "budget": {"kimg": 0.096, "eval_every_kimg": 0.032},
         "resources": {"cpus_per_trial": 1}}
"""Three evaluations a trial: time to lose the worker node between two of them."""


def node_ids(address: str, worker_port: int, timeout: float = 60) -> tuple[str, str]:
    """(head's, worker's) Ray node ids, once both nodes have joined."""
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [n for n in ray.nodes() if n["Alive"]]
            if len(alive) == 2:
                [worker] = [n["NodeID"] for n in alive if n["NodeManagerPort"] == worker_port]
                [head] = [n["NodeID"] for n in alive if n["NodeID"] != worker]
                return head, worker
            time.sleep(0.2)
    finally:
        ray.shutdown()
    pytest.fail("the worker node did not join the head in time")


def running_on(db: Path, node: str) -> list[int]:
    """Numbers of RUNNING trials on `node` with a checkpoint before their last evaluation (so
    that they are still training), read with plain SQL."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute("SELECT t.number, a.key, a.value_json FROM trial_user_attributes a JOIN trials t "
                               "ON t.trial_id = a.trial_id WHERE t.state = 'RUNNING' "
                               "AND a.key IN ('checkpoint', 'ray_node_id', 'kimg')").fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet, or a write holds the lock
        return []
    attrs: dict[int, dict] = {}
    for number, key, value in rows:
        attrs.setdefault(number, {})[key] = json.loads(value)
    last = STUDY["budget"]["kimg"]
    return [n for n, a in attrs.items()
            if a.get("ray_node_id") == node and "checkpoint" in a and a.get("kimg", last) < last]


def test_a_study_on_two_nodes_survives_losing_one(tmp_path):
    study_file = tmp_path / "cluster.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out, shared = tmp_path / "run", tmp_path / "shared"
    env = {**os.environ, "VOXGAN_CACHE": str(tmp_path / "cache")}
    with local_cluster(num_cpus=1, num_gpus=0) as address, worker_node(address, num_cpus=1) as worker:
        head_id, worker_id = node_ids(address, worker.node_manager_port)
        with open(tmp_path / "search.log", "w") as log:
            search = subprocess.Popen([str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(out),
                                       "--trials", str(TRIALS), "--address", address, "--storage-path", str(shared),
                                       "--quiet"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not (lost := running_on(out / "study.db", worker_id)):
                assert search.poll() is None and time.monotonic() < deadline, "no trial ran on the worker node"
                time.sleep(0.2)
            worker.kill()
            code = search.wait(timeout=240)
        finally:
            if search.poll() is None:
                search.kill()
                search.wait()
    log_text = (tmp_path / "search.log").read_text()
    assert code == 0, log_text
    assert "Traceback" not in log_text, log_text

    trials = {t.number: t for t in open_existing_study(None, out, None).trials}
    assert len(trials) == TRIALS
    assert not [n for n, t in trials.items() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for number in lost:
        assert trials[number].state == TrialState.FAIL, trials[number].state
        assert "node left the Ray cluster" in trials[number].user_attrs["fail_reason"]
    assert all(t.state == TrialState.COMPLETE for n, t in trials.items() if n not in lost), \
        {n: t.state.name for n, t in trials.items()}
    assert {t.user_attrs.get("ray_node_id") for t in trials.values()} == {head_id, worker_id}
    assert all(t.user_attrs["checkpoint"].startswith(f"{shared}/run-") for t in trials.values())
    best = [Path(t.user_attrs["checkpoint"]) for t in ranked_trials(open_existing_study(None, out, None))[:3]]
    assert sorted(shared.rglob("*.pt")) == sorted(best), "not only the best 3 (keep_checkpoints) kept a checkpoint"

    export = [str(BIN / "voxgan-search"), "export", "--run", str(out), "--out", str(tmp_path / "best.yaml")]
    assert subprocess.run(export, env=env, capture_output=True, timeout=60).returncode == 0
    assert (tmp_path / "best.pt").is_file()
    retrain = subprocess.run([str(BIN / "voxgan-train"), "--config", str(tmp_path / "best.yaml"), "--out",
                              str(tmp_path / "retrained")], env=env, capture_output=True, text=True, timeout=120)
    assert retrain.returncode == 0, retrain.stderr
    assert (tmp_path / "retrained" / "checkpoint.pt").is_file()
