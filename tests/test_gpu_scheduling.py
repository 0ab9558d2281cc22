"""GPU packing, scheduled on a real Ray cluster with logical GPUs (no GPU needed).

A head node declares 2 GPUs and 8 CPUs; `voxgan-search --gpus-per-trial 0.25` must then run 8
trials at once (Ray's books show both GPUs fully held), each told its own GPU through
`CUDA_VISIBLE_DEVICES`, 4 trials per GPU. The trials train on the CPU (`base: {device: cpu}`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import ray
import yaml
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.local_cluster import local_cluster  # noqa: E402
from voxgan_search.coordination.storage import open_existing_study  # noqa: E402

BIN = Path(sys.executable).parent
STUDY = {
    "name": "packing",
    "data": {"source": "procedural", "resolution": 16, "n_shapes": 40, "test_fraction": 0.2},
    "base": {"device": "cpu", "eval": {"n_samples": 8, "max_real": 8, "c2st_epochs": 1}},
    "budget": {"kimg": 0.064, "eval_every_kimg": 0.032},
    "confirm": {"top": 0}, "stop_degenerate": False,  # single-run behaviour: no confirmation runs, no early stop
    "scheduler": "fifo",
    "sampler": "random",
    "space": {"batch_size": [16], "latent_size": [16],
              "generator": {"width": 4, "extra_depth": {"low": 0, "high": 0}},
              "discriminator": {"width": 4, "extra_depth": {"low": 0, "high": 0}}},
}


def test_quarter_gpus_run_eight_trials_at_once_on_two_logical_gpus(tmp_path):
    study_file = tmp_path / "packing.yaml"
    study_file.write_text(yaml.safe_dump(STUDY))
    out = tmp_path / "run"
    env = {**os.environ, "VOXGAN_CACHE": str(tmp_path / "cache")}
    with local_cluster(num_cpus=8, num_gpus=2) as address:
        search = subprocess.Popen([str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(out),
                                   "--trials", "8", "--gpus-per-trial", "0.25", "--address", address, "--quiet"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)  # to read the scheduler's books
        try:
            least_free = 2.0
            while search.poll() is None:
                least_free = min(least_free, ray.available_resources().get("GPU", 0.0))
                time.sleep(0.1)
        finally:
            ray.shutdown()
        log = search.stdout.read()
    assert search.returncode == 0, log
    assert least_free == 0.0, f"at most {(2 - least_free) / 0.25:.0f} trials held a GPU share at once"

    trials = open_existing_study(None, out, None).trials
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert Counter(t.user_attrs["cuda_visible_devices"] for t in trials) == {"0": 4, "1": 4}


def test_a_trial_trains_on_the_gpu_ray_gave_it_never_on_one_it_merely_sees():
    """Ray leaves CUDA_VISIBLE_DEVICES as it was for a worker that asks for no GPU
    (ray-project/ray#62492): a CPU trial sees the machine's GPUs and must still train on the CPU."""

    def where_a_trial_trains() -> dict:  # defined here: Ray ships it to the worker by value
        """In a Ray worker: what the trainable decides, with CUDA taken to be present (a GPU
        machine), so that only Ray's assignment can keep the trial off it."""
        import torch

        from voxgan_search.tuning.trainable import trial_device

        torch.cuda.is_available = lambda: True  # this worker's view of a GPU machine
        ids = ray.get_gpu_ids()
        return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "ids": [str(i) for i in ids],
                "auto": str(trial_device("auto", ids)), "cpu": str(trial_device("cpu", ids))}
    with local_cluster(num_cpus=2, num_gpus=1) as address:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                 runtime_env={"env_vars": {"CUDA_VISIBLE_DEVICES": "0"}})
        try:
            cpu_slot = ray.get(ray.remote(num_cpus=1, num_gpus=0)(where_a_trial_trains).remote())
            gpu_slot = ray.get(ray.remote(num_cpus=1, num_gpus=1)(where_a_trial_trains).remote())
        finally:
            ray.shutdown()
    assert cpu_slot == {"visible": "0", "ids": [], "auto": "cpu", "cpu": "cpu"}
    assert gpu_slot["ids"] == ["0"] and gpu_slot["auto"] == "cuda" and gpu_slot["cpu"] == "cpu"


def test_device_cuda_without_a_gpu_share_is_refused_before_anything_runs(tmp_path):
    study_file = tmp_path / "cuda.yaml"
    study_file.write_text(yaml.safe_dump({**STUDY, "base": {**STUDY["base"], "device": "cuda"}}))
    proc = subprocess.run([str(BIN / "voxgan-search"), "--study", str(study_file), "--out", str(tmp_path / "run"),
                           "--trials", "2", "--quiet"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        "error: the study's trials ask for device=cuda, but --gpus-per-trial is 0")
    assert not (tmp_path / "run").exists()
