"""`python -m benchmarks.gpu_check --dry-run` runs every step of the GPU check on the CPU at tiny
sizes (the packing on a local Ray node with one logical GPU) and writes a complete results file,
so the script is known to work before it meets a GPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "check.md"
    env = {**os.environ, "VOXGAN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    text = out.read_text()
    for heading in ("## a. Training throughput", "## b. IoU matrix", "## e. GPU packing", "## f. GPU tests"):
        assert heading in text, heading
    assert re.search(r"\| 16\^3 \| 2 \| 1 x 1 \| [\d,.]+ \| [\d,.]+ \|", text), "no training row"
    rows = re.findall(r"^\| (\d) \| ([\d.]+) \| ([\d,]+) \| [\d,]+ \| 0 \|", text, flags=re.M)
    assert [(n, share) for n, share, _ in rows] == [("1", "1"), ("2", "0.5"), ("4", "0.25"), ("8", "0.125")], text
    assert all(float(rate.replace(",", "")) > 0 for _, _, rate in rows)
    assert "`pytest -m gpu`: exit 0" in text
    assert "bench-json" in text  # the figures stay machine-readable


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the real check would run")
def test_without_cuda_the_real_check_refuses_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "x.md")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: no CUDA device here; use --dry-run to check the script on a CPU"]
    assert not (tmp_path / "x.md").exists()


def test_a_dry_run_without_out_names_a_temporary_file_without_asking_for_a_gpu():
    from benchmarks.gpu_check import results_path

    path = results_path(dry_run=True)
    assert path.parent == Path(tempfile.gettempdir()) and path.name == "voxgan-gpu-check-dry-run.md"


def test_fractional_gpus_count_whole_trials():
    from voxgan_search.tuning.tuner import whole_share

    assert [whole_share(1, s) for s in (0.1, 0.125, 0.25, 0.3, 1.0)] == [10, 8, 4, 3, 1]
    assert whole_share(8, 3) == 2
