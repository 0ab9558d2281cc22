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
known to work before it meets a GPU. The whole check keeps within `--budget` (7 minutes): each
step may take a share of the time left, and the results file is rewritten after every step, so a
run cut short still reports what it measured. It exits 1 when any step, or any trial, failed.
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
        "confirm": {"top": 0}, "stop_degenerate": False,
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


def packing_row(n: int, share: float, dry_run: bool, folder: Path, address: str | None, log: list[str],
                timeout: float) -> dict:
    """One packing setting: a fresh study of `n` trials, all at once; samples/s summed over the
    trials. Any trial that did not finish fails the row, with its reason: a check that counted
    only the trials that reported would call a study of crashed trials a success."""
    from optuna.trial import TrialState

    from voxgan_search.coordination.storage import open_existing_study
    from voxgan_search.records.trial_record import DEVICES_ATTR, REASON_ATTR

    out = folder / f"run-{n}"
    argv = [sys.executable, "-m", "voxgan_search.cli", "--study", str(folder / "packing.yaml"), "--out", str(out),
            "--trials", str(n), "--gpus-per-trial", f"{share:g}", "--max-concurrent", str(n), "--cpus-per-trial", "1",
            "--quiet", *(["--address", address] if address else [])]
    start = time.perf_counter()
    code, output = run(argv, log, timeout)
    row = {"trials": n, "gpus_per_trial": share, "exit": code, "wall_s": time.perf_counter() - start}
    # the trials that ran: a study of fewer trials than its enqueued recipes leaves one waiting
    stored = open_existing_study(None, out, None).trials if (out / "study.db").is_file() else []
    trials = [t for t in stored if t.state != TrialState.WAITING]
    failed = [t for t in trials if t.state != TrialState.COMPLETE]
    if code != 0 or failed or len(trials) < n:
        reasons = sorted({t.user_attrs.get(REASON_ATTR, t.state.name) for t in failed})
        row["error"] = (f"{len(failed)} of {n} trial(s) did not finish: {'; '.join(reasons)}" if failed
                        else (output.splitlines()[-1] if output else "no output"))
        row["exit"] = code or 1
        return row
    rates = [t.user_attrs["samples_per_s"] for t in trials]
    # n trials at once: n times the mean rate (n = 1 runs its study's two recipes one after the other)
    row.update(aggregate_sps=n * sum(rates) / len(rates), per_trial_sps=sum(rates) / len(rates),
               gpus=sorted({t.user_attrs.get(DEVICES_ATTR, "?") for t in trials}))
    return row


def packing_markdown(rows: list[dict], dry_run: bool) -> list[str]:
    study = packing_study(dry_run)
    lines = ["", "## e. GPU packing through voxgan-search", "",
             f"Procedural {study['data']['resolution']}^3, width {study['space']['generator']['width']}, batch 32, "
             f"{study['budget']['kimg']} kimg per trial; all trials at once; aggregate = the sum of the "
             "trials' own samples/s (last evaluation), i.e. trials at once x their mean.", "",
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


def results_path(dry_run: bool) -> Path:
    """The results file when --out is not given: benchmarks/results-<gpu>.md, or for a dry run a
    file in the temporary folder (a CPU has no GPU to name, and a rehearsal is not a result)."""
    if dry_run:
        return Path(tempfile.gettempdir()) / "voxgan-gpu-check-dry-run.md"
    import torch

    from benchmarks.bench import device_slug

    return ROOT / "benchmarks" / f"results-{device_slug(torch.device('cuda'))}.md"


class Results:
    """The results file, rewritten after every step, so that a check cut short (a device
    command's time limit) still leaves what it measured."""

    def __init__(self, out: Path, bench_out: Path, dry_run: bool, log: list[str]):
        self.out, self.bench_out, self.dry_run, self.log = out, bench_out, dry_run, log
        self.tests = "`pytest -m gpu`: not run yet"
        self.bench: tuple[int, str] | None = None
        self.rows: list[dict] = []

    def write(self) -> None:
        if self.bench is None:
            text = "# voxgan GPU check\n\nbenchmark: not run yet\n"
        elif self.bench[0] == 0 and self.bench_out.is_file():
            text = self.bench_out.read_text()
        else:
            text = f"# voxgan GPU check\n\nbenchmark failed (exit {self.bench[0]}):\n\n```\n{self.bench[1][-3000:]}\n```\n"
        marker = text.find("<!-- bench-json")
        body, embedded = (text[:marker], text[marker:]) if marker >= 0 else (text, "")
        extra = packing_markdown(self.rows, self.dry_run) + [
            "", "## f. GPU tests", "", self.tests, "",
            "## Commands (`python -m benchmarks.gpu_check" + (" --dry-run" if self.dry_run else "") + "`)", "",
            *[f"    {line}" for line in self.log], ""]
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(body.rstrip() + "\n" + "\n".join(extra) + "\n" + embedded)

    @property
    def failed(self) -> bool:
        return (self.bench is None or self.bench[0] != 0 or len(self.rows) < len(PACKING)
                or any(row["exit"] != 0 for row in self.rows) or "exit 0;" not in self.tests)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, logical GPU for the packing")
    p.add_argument("--out", type=Path, help="results file (default benchmarks/results-<gpu>.md; a dry run: a temporary file)")
    p.add_argument("--budget", type=float, default=420, metavar="SECONDS",
                   help="the whole check's time: each step gets a share of what is left (default 420)")
    args = p.parse_args(argv)

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device here; use --dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    out = args.out or results_path(args.dry_run)
    deadline = time.monotonic() + args.budget

    def share(fraction: float) -> float:
        return max(30.0, (deadline - time.monotonic()) * fraction)

    log: list[str] = []
    with tempfile.TemporaryDirectory(prefix="voxgan-gpu-check-") as folder:
        results = Results(out, Path(folder) / "bench.md", args.dry_run, log)
        results.write()
        results.tests = gpu_tests(log, share(0.2))
        results.write()
        results.bench = benchmark(results.bench_out, args.dry_run, log, share(0.5))
        results.write()
        from benchmarks.local_cluster import local_cluster

        (Path(folder) / "packing.yaml").write_text(yaml.safe_dump(packing_study(args.dry_run)))
        with local_cluster(num_cpus=8, num_gpus=1) if args.dry_run else nullcontext(None) as address:
            for left, (n, gpus) in zip(range(len(PACKING), 0, -1), PACKING):
                results.rows.append(packing_row(n, gpus, args.dry_run, Path(folder), address, log, share(1 / left)))
                results.write()
    print(f"written {out}")
    if results.failed:
        print("error: the GPU check failed: see the results file", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
