"""Everything a GPU claim needs, in one command, into one results file.

    python -m benchmarks.gpu_check                  # on a CUDA machine: benchmarks/results-<gpu>.md
    python -m benchmarks.gpu_check --dry-run --out /tmp/check.md   # the whole script on a CPU, tiny sizes

Steps, each a subprocess whose failure is recorded and does not stop the others:

1. `pytest -m gpu`: the CUDA fast path against an fp32 copy (tests/test_fast_path.py);
2. the side-by-side training benchmark, the fp32 port against voxgan's Trainer, 64^3 and 32^3,
   batch 8/32/128, and the IoU matrix on the GPU (`benchmarks/bench.py`);
3. GPU packing: 1, 2, 4 and 8 small 32^3 trials at once through `voxgan-search` (run as
   `python -m voxgan_search.cli`, so that an uninstalled checkout on PYTHONPATH works) at
   `--gpus-per-trial` 1, 0.5, 0.25 and 0.125, and their aggregate samples/s.

`--dry-run` runs the same steps at tiny sizes on the CPU: the benchmark on 16^3, and the packing
on a local Ray node that declares one logical GPU (the trials train on the CPU), so the script is
known to work before it meets a GPU. On an H100 or H200 the whole check takes about 10 minutes.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKING = ((1, 1.0), (2, 0.5), (4, 0.25), (8, 0.125))
"""(trials at once, --gpus-per-trial)."""


def packing_study(dry_run: bool) -> dict:
    """Small trials: 32^3 procedural shapes, narrow networks, two passes over the training shapes
    (16^3 and tinier in a dry run)."""
    resolution, shapes, width, kimg = (16, 40, 4, 0.064) if dry_run else (32, 1280, 16, 2.304)
    return {
        "name": "packing",
        "data": {"source": "procedural", "resolution": resolution, "n_shapes": shapes, "test_fraction": 0.1},
        "base": {"eval": {"n_samples": 8, "max_real": 8, "c2st_epochs": 1}, **({"device": "cpu"} if dry_run else {})},
        "budget": {"kimg": kimg, "eval_every_kimg": kimg},
        "scheduler": "fifo",
        "sampler": "random",
        "space": {"batch_size": [32], "latent_size": [64], "loss": "bce", "d_accuracy_threshold": None,
                  "generator": {"width": width, "extra_depth": 0, "optimizer": "adam"},
                  "discriminator": {"width": width, "extra_depth": 0, "optimizer": "adam"}},
    }


def run(argv: list[str], log: list[str], timeout: float) -> tuple[int, str]:
    """Run a step; its command goes into the results file, its output tail into the log."""
    log.append(f"$ {shlex.join(argv)}")
    print(log[-1], flush=True)
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    output = (proc.stdout + proc.stderr).strip()
    print(output[-2000:], flush=True)
    return proc.returncode, output


def gpu_tests(log: list[str], timeout: float) -> str:
    code, output = run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"], log, timeout)
    last = output.splitlines()[-1] if output else ""
    return f"`pytest -m gpu`: exit {code}; {last}"


def benchmark(out: Path, dry_run: bool, log: list[str], timeout: float) -> tuple[int, str]:
    sizes = (["--configs", "16x2", "--iters", "1", "--repeats", "1", "--iou-size", "32", "--iou-resolution", "16",
              "--device", "cpu"] if dry_run else ["--full"])
    return run([sys.executable, "benchmarks/bench.py", "--only", "training", "iou", "--out", str(out), *sizes], log, timeout)


def packing(dry_run: bool, address: str | None, log: list[str], timeout: float) -> list[dict]:
    """Each setting is a fresh study of `n` trials, all at once; samples/s summed over the trials."""
    from voxgan_search.coordination.storage import open_existing_study

    rows = []
    with tempfile.TemporaryDirectory(prefix="voxgan-packing-") as folder:
        study_file = Path(folder) / "packing.yaml"
        study_file.write_text(yaml.safe_dump(packing_study(dry_run)))
        for n, share in PACKING:
            out = Path(folder) / f"run-{n}"
            argv = [sys.executable, "-m", "voxgan_search.cli", "--study", str(study_file), "--out", str(out), "--trials", str(n),
                    "--gpus-per-trial", f"{share:g}", "--max-concurrent", str(n), "--cpus-per-trial", "1", "--quiet",
                    *(["--address", address] if address else [])]
            start = time.perf_counter()
            code, output = run(argv, log, timeout)
            wall = time.perf_counter() - start
            row = {"trials": n, "gpus_per_trial": share, "exit": code, "wall_s": wall}
            if code == 0:
                # the trials that ran (a study of fewer trials than its enqueued recipes leaves one waiting)
                trials = [t for t in open_existing_study(None, out, None).trials if "samples_per_s" in t.user_attrs]
                rates = [t.user_attrs.get("samples_per_s", 0.0) for t in trials]
                row.update(aggregate_sps=sum(rates), per_trial_sps=sum(rates) / max(len(rates), 1),
                           gpus=sorted({t.user_attrs.get("cuda_visible_devices", "?") for t in trials}))
            else:
                row["error"] = output.splitlines()[-1] if output else "no output"
            rows.append(row)
    return rows


def packing_markdown(rows: list[dict], dry_run: bool) -> list[str]:
    study = packing_study(dry_run)
    lines = ["", "## e. GPU packing through voxgan-search", "",
             f"Procedural {study['data']['resolution']}^3, width {study['space']['generator']['width']}, batch 32, "
             f"{study['budget']['kimg']} kimg per trial; all trials at once; aggregate = the sum of the "
             "trials' own samples/s (last evaluation).", "",
             "| trials at once | --gpus-per-trial | aggregate samples/s | per trial | CUDA_VISIBLE_DEVICES | wall |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        if row["exit"] == 0:
            lines.append(f"| {row['trials']} | {row['gpus_per_trial']:g} | {row['aggregate_sps']:,.0f} | "
                         f"{row['per_trial_sps']:,.0f} | {', '.join(row['gpus'])} | {row['wall_s']:.0f} s |")
        else:
            lines.append(f"| {row['trials']} | {row['gpus_per_trial']:g} | failed (exit {row['exit']}): "
                         f"{row['error']} | | | {row['wall_s']:.0f} s |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, logical GPU for the packing")
    p.add_argument("--out", type=Path, help="results file (default benchmarks/results-<gpu>.md)")
    p.add_argument("--step-timeout", type=float, default=900, help="seconds one step may take")
    args = p.parse_args(argv)

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device here; use --dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    from benchmarks.bench import device_slug

    out = args.out or ROOT / "benchmarks" / f"results-{device_slug(torch.device('cuda'))}.md"
    log: list[str] = []
    tests = gpu_tests(log, args.step_timeout)
    code, bench_output = benchmark(out, args.dry_run, log, args.step_timeout)
    from benchmarks.local_cluster import local_cluster

    with local_cluster(num_cpus=8, num_gpus=1) if args.dry_run else nullcontext(None) as address:
        rows = packing(args.dry_run, address, log, args.step_timeout)

    text = out.read_text() if code == 0 and out.is_file() else f"# voxgan GPU check\n\nbenchmark failed (exit {code}):\n\n```\n{bench_output[-3000:]}\n```\n"
    marker = text.find("<!-- bench-json")
    body, embedded = (text[:marker], text[marker:]) if marker >= 0 else (text, "")
    extra = packing_markdown(rows, args.dry_run) + ["", "## f. GPU tests", "", tests, "",
                                                    "## Commands (`python -m benchmarks.gpu_check"
                                                    + (" --dry-run" if args.dry_run else "") + "`)", "",
                                                    *[f"    {line}" for line in log], ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body.rstrip() + "\n" + "\n".join(extra) + "\n" + embedded)
    print(f"written {out}")
    failed = code != 0 or any(row["exit"] != 0 for row in rows) or "exit 0;" not in tests
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
