"""Speed of voxgan, measured in one process: training throughput, IoU matrix, data loading, search overhead.

    python benchmarks/bench.py                 # CPU: the quick version; CUDA: the full one
    python benchmarks/bench.py --quick         # the quick version anywhere
    python benchmarks/bench.py --out FILE      # default benchmarks/results-<device>.md

Sections (see benchmarks/README.md for what each figure means and the targets):

a. Training throughput (samples/s) of a PLAIN fp32 port of the tutorial (its networks and loop
   written straightforwardly below: nn.BCELoss on sigmoid outputs, Adam, no autocast, no
   channels_last, a loss `.item()` per step as a Keras-style loop logs it) against voxgan's
   `Trainer` at the `tutorial` preset, both on the same synthetic random-occupancy data kept on
   the device, so no data loading is timed. Whole epochs of N iterations are timed, after a
   warm-up epoch, with torch.cuda.synchronize() around each timed region; the figure is the
   median over the repeats. The networks are always the real tutorial widths.
b. `voxgan.metrics.iou_matrix` of 1,000 x 1,000 random 64^3 shapes (10% occupancy) on the device.
c. Loading the real 3D ShapeNets chairs with `load_dataset`, cold (fresh cache folder) and cached.
d. The search harness's overhead per trial: `voxgan_search.runner.run_search` on a study of trivially
   short trials, wall time against the trials' own time (Ray's `time_total_s`).
e. G's output layer (a transposed convolution to one channel), forward and backward, as
   `nn.ConvTranspose3d` and as voxgan's `ConvTranspose3dToOne`, whose forward pass runs ATen's kernel.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a source checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from benchmarks.machine import cpu_name  # noqa: E402

PEAK_BF16_TFLOPS = {"H200 NVL": 835.0, "H200": 989.0}
"""Dense bf16 tensor-core peak (NVIDIA's datasheet figure with sparsity, halved) for the
fraction-of-peak column, by the first key found in the device name: the NVL card is slower."""
DEFAULT_CHAIRS = ROOT.parent / "shared" / "data" / "3dshapenets" / "volumetric_data"

# The tutorial's recipe (SEED-SPEC): latent 200 ~ N(0, 0.33); G Adam(lr 0.0025, beta1 0.5); D Adam(lr 1e-5, beta1 0.9).
LATENT, LATENT_STD = 200, 0.33
G_LR, G_BETA1, D_LR, D_BETA1 = 0.0025, 0.5, 1e-5, 0.9


# ---- device and timing ---------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of fn after `warmup` untimed ones, synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def device_slug(device: torch.device) -> str:
    """`cpu`, or the GPU's model in lower case (`NVIDIA H200` -> `h200`), for the results file name."""
    if device.type != "cuda":
        return "cpu"
    words = [w for w in device_name(device).lower().replace("-", " ").split() if w not in ("nvidia", "geforce", "tesla")]
    return "-".join(words) or "cuda"


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def free_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---- a. the plain fp32 reference: the tutorial's networks and loop, written straightforwardly -------


def channels(resolution: int) -> list[int]:
    """Hidden channels from the 4^3 end: 64^3 -> [512, 256, 128, 64] (SEED-SPEC's tables), 32^3 -> [256, 128, 64]."""
    n_up = int(np.log2(resolution // 4))
    return [64 * 2 ** (n_up - 1 - i) for i in range(n_up)]


def reference_generator(resolution: int) -> nn.Sequential:
    """SEED-SPEC's generator table: transposed convs (4, stride 1 valid then stride 2 same), batch
    norm + ReLU on every hidden layer, sigmoid out."""
    ch = channels(resolution)
    layers: list[nn.Module] = [nn.ConvTranspose3d(LATENT, ch[0], 4, 1, 0), nn.BatchNorm3d(ch[0]), nn.ReLU()]
    for c_in, c_out in zip(ch, ch[1:]):
        layers += [nn.ConvTranspose3d(c_in, c_out, 4, 2, 1), nn.BatchNorm3d(c_out), nn.ReLU()]
    layers += [nn.ConvTranspose3d(ch[-1], 1, 4, 2, 1), nn.Sigmoid()]
    return nn.Sequential(*layers)


def reference_discriminator(resolution: int) -> nn.Sequential:
    """SEED-SPEC's discriminator table: convs (4, stride 2 same then stride 1 valid), batch norm +
    LeakyReLU(0.2) on every hidden layer, sigmoid out."""
    ch = channels(resolution)[::-1]
    layers: list[nn.Module] = [nn.Conv3d(1, ch[0], 4, 2, 1), nn.BatchNorm3d(ch[0]), nn.LeakyReLU(0.2)]
    for c_in, c_out in zip(ch, ch[1:]):
        layers += [nn.Conv3d(c_in, c_out, 4, 2, 1), nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2)]
    layers += [nn.Conv3d(ch[-1], 1, 4, 1, 0), nn.Sigmoid()]
    return nn.Sequential(*layers)


class ReferenceLoop:
    """The tutorial's iteration in plain fp32 PyTorch: z -> fake; D on real (1) and fake (0),
    d_loss the mean; new z, G through the frozen D with label 1. Losses are read with .item()
    every step, as a straightforward port (Keras' train_on_batch returns floats) does."""

    def __init__(self, resolution: int, batch: int, data: torch.Tensor, device: torch.device):
        torch.manual_seed(0)
        self.G = reference_generator(resolution).to(device)
        self.D = reference_discriminator(resolution).to(device)
        self.g_opt = torch.optim.Adam(self.G.parameters(), lr=G_LR, betas=(G_BETA1, 0.999))
        self.d_opt = torch.optim.Adam(self.D.parameters(), lr=D_LR, betas=(D_BETA1, 0.999))
        self.loss = nn.BCELoss()
        self.data, self.batch, self.device = data, batch, device  # (N, R, R, R) float32 on the device

    def epoch(self) -> float:
        g_total = 0.0
        order = torch.randperm(len(self.data), device=self.device)
        n_batches = len(self.data) // self.batch
        for i in range(n_batches):
            real = self.data[order[i * self.batch : (i + 1) * self.batch]].unsqueeze(1)
            n = real.shape[0]
            ones, zeros = torch.ones(n, device=self.device), torch.zeros(n, device=self.device)
            z = torch.randn(n, LATENT, 1, 1, 1, device=self.device) * LATENT_STD
            fake = self.G(z)
            self.d_opt.zero_grad()
            d_loss = 0.5 * (self.loss(self.D(real).view(-1), ones) + self.loss(self.D(fake.detach()).view(-1), zeros))
            d_loss.backward()
            self.d_opt.step()
            for p in self.D.parameters():
                p.requires_grad_(False)
            z = torch.randn(n, LATENT, 1, 1, 1, device=self.device) * LATENT_STD
            self.g_opt.zero_grad()
            g_loss = self.loss(self.D(self.G(z)).view(-1), ones)
            g_loss.backward()
            self.g_opt.step()
            for p in self.D.parameters():
                p.requires_grad_(True)
            d_loss.item()  # the tutorial's per-step read of both losses, a host sync each
            g_total += g_loss.item()
        return g_total / n_batches


def gflop_per_sample(resolution: int, device: torch.device) -> float:
    """GFLOP of one training iteration of the tutorial networks (D on real and fake, G through D),
    per sample, counted by PyTorch on a batch of one: the count is linear in the batch. Counted,
    not scaled from SEED-SPEC's 94 at 64^3, because 32^3 drops a layer rather than shrinking."""
    from torch.utils.flop_counter import FlopCounterMode

    loop = ReferenceLoop(resolution, 1, torch.zeros(1, resolution, resolution, resolution, device=device), device)
    with FlopCounterMode(display=False) as counter:
        loop.epoch()
    return counter.get_total_flops() / 1e9


def random_volumes(n: int, resolution: int, occupancy: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, resolution, resolution, resolution), dtype=np.float32) < occupancy


def bench_training(resolution: int, batch: int, iters: int, repeats: int, device: torch.device) -> dict:
    """Samples/s of the plain fp32 reference and of voxgan's Trainer over epochs of `iters` iterations."""
    from voxgan.config import preset
    from voxgan.data import VoxelDataset
    from voxgan.device import precision_name
    from voxgan.trainer import Trainer

    volumes = random_volumes(iters * batch, resolution, 0.1, seed=resolution + batch)
    samples = iters * batch

    # (a) the reference first, under PyTorch's default backend settings (the Trainer's too).
    ref = ReferenceLoop(resolution, batch, torch.from_numpy(volumes).float().to(device), device)
    ref_times = timed(ref.epoch, device, repeats)
    del ref
    free_memory(device)

    # (b) voxgan's Trainer at the tutorial preset (auto device and precision: bf16 on CUDA; channels_last_3d on both).
    cfg = preset("tutorial", [f"data.resolution={resolution}", f"batch_size={batch}", f"device={device.type}"])
    data = VoxelDataset(train=volumes, test=volumes[:2], name="synthetic")
    trainer = Trainer(cfg, data)
    trainer_times = timed(trainer.train_epoch, device, repeats)
    precision = precision_name(trainer.amp_dtype)
    del trainer
    free_memory(device)

    ref_sps = samples / statistics.median(ref_times)
    voxgan_sps = samples / statistics.median(trainer_times)
    return {
        "resolution": resolution, "batch": batch, "iters": iters, "repeats": repeats,
        "reference_sps": ref_sps, "voxgan_sps": voxgan_sps, "ratio": voxgan_sps / ref_sps,
        "reference_times": ref_times, "voxgan_times": trainer_times, "voxgan_precision": precision,
    }


# ---- g. training precision ------------------------------------------------------------------------


def bench_precision(kimg: float, seeds: list[int], device: torch.device) -> dict:
    """fp32 against bf16 autocast on this device, for the default study's reference recipe: time
    per kimg and the score after `kimg`, seed-paired (each seed trains both ways, one after the
    other, on the same data), so that a speed-up is weighed against what it does to the shapes."""
    from voxgan.config import Config, apply_overrides
    from voxgan.data import load_dataset
    from voxgan.trainer import Trainer
    from voxgan_search.study.space import baseline_config_values
    from voxgan_search.study.spec import load_study

    spec = load_study("default")
    base = spec.trial_config(baseline_config_values(spec.space, "reference")).to_dict()
    data = load_dataset(spec.data)
    runs = []
    for seed in seeds:
        for precision in ("fp32", "bf16"):
            cfg = Config.from_dict(apply_overrides(base, [f"precision={precision}", f"seed={seed}", f"device={device.type}"]))
            trainer = Trainer(cfg, data)
            start = time.perf_counter()
            trainer.train_to_kimg(kimg)
            seconds = time.perf_counter() - start
            runs.append({"seed": seed, "precision": precision, "s_per_kimg": seconds / kimg,
                         "score": trainer.evaluate()["score"]})
            print(f"    seed {seed} {precision}: {seconds / kimg:.2f} s/kimg, score {runs[-1]['score']:.3f}", flush=True)
    by = {p: [r for r in runs if r["precision"] == p] for p in ("fp32", "bf16")}
    speed = [a["s_per_kimg"] / b["s_per_kimg"] for a, b in zip(by["fp32"], by["bf16"])]
    diffs = [b["score"] - a["score"] for a, b in zip(by["fp32"], by["bf16"])]
    return {"kimg": kimg, "seeds": seeds, "runs": runs,
            "s_per_kimg": {p: statistics.median(r["s_per_kimg"] for r in rows) for p, rows in by.items()},
            "score_mean": {p: statistics.mean(r["score"] for r in rows) for p, rows in by.items()},
            "score_std": {p: statistics.stdev(r["score"] for r in rows) if len(rows) > 1 else 0.0 for p, rows in by.items()},
            "speedup_median": statistics.median(speed), "score_diffs": diffs}


# ---- b. the IoU matrix ---------------------------------------------------------------------------


def bench_iou(n: int, resolution: int, repeats: int, device: torch.device) -> dict:
    from voxgan import metrics

    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.rand((n, resolution, resolution, resolution), generator=gen, device=device) < 0.1
    b = torch.rand((n, resolution, resolution, resolution), generator=gen, device=device) < 0.1
    # Warm up on a small slice (a full warm-up costs as much as a timed run on a CPU).
    metrics.iou_matrix(a[:64], b[:64], device=device)
    times = timed(lambda: metrics.iou_matrix(a, b, device=device), device, repeats, warmup=1 if device.type == "cuda" else 0)
    del a, b
    free_memory(device)
    return {"n": n, "resolution": resolution, "repeats": repeats, "seconds": statistics.median(times), "times": times}


# ---- c. loading the real chairs -------------------------------------------------------------------


def bench_chairs(source: Path, resolutions: list[int], cached_repeats: int) -> list[dict]:
    from voxgan.config import DataConfig
    from voxgan.data import load_dataset

    rows = []
    with tempfile.TemporaryDirectory(prefix="voxgan-bench-cache-") as cache:
        for resolution in resolutions:
            cfg = DataConfig(source=str(source), resolution=resolution, cache_dir=str(Path(cache) / f"r{resolution}"))
            start = time.perf_counter()
            data = load_dataset(cfg)
            cold = time.perf_counter() - start
            cached = []
            for _ in range(cached_repeats):
                start = time.perf_counter()
                load_dataset(cfg)
                cached.append(time.perf_counter() - start)
            rows.append({"resolution": resolution, "n_train": len(data.train), "n_test": len(data.test),
                         "cold_s": cold, "cached_s": statistics.median(cached), "cached_times": cached})
    return rows


# ---- d. the search's overhead per trial -------------------------------------------------------------

TINY_STUDY = {
    "name": "bench-overhead",
    "data": {"source": "procedural", "resolution": 16, "n_shapes": 40, "test_fraction": 0.2},
    "base": {"eval": {"n_samples": 8, "max_real": 8, "c2st_epochs": 1}},
    "budget": {"kimg": 0.032, "eval_every_kimg": 0.032},  # one pass over the 32 training shapes
    "confirm": {"top": 0}, "stop_degenerate": False,
    "objectives": ["score"],
    "scheduler": "fifo",
    "sampler": "random",
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
    "space": {"generator": {"width": 4}, "discriminator": {"width": 4}, "latent_size": [16, 32]},
}


def bench_search(trials: int, runs: int) -> dict:
    """`runs` searches of `trials` tiny trials each, one trial at a time; the median of each figure.

    Each run's wall time splits into a fixed part paid once per search (Ray's start and the first
    trial's worker start-up before it, Ray's shutdown after the last trial) and a steady part
    paid by every further trial: (last trial's end - first trial's end - their own times) /
    (trials - 1), the gap between one trial's end and the next one's, less the next one's own
    time. The steady part is what a long study pays per trial."""
    per_run = [search_run(trials) for _ in range(runs)]
    figures = {key: statistics.median(run[key] for run in per_run) for key in per_run[0] if key != "trials_timed"}
    return {"trials": trials, "runs": runs, "trials_timed": min(run["trials_timed"] for run in per_run),
            "max_concurrent": 1, **figures, "per_run": per_run}


def search_run(trials: int) -> dict:
    import yaml

    from voxgan_search.runner import SearchSettings, run_search
    from voxgan_search.records.trial_record import SECONDS_ATTR
    from voxgan_search.coordination.storage import open_existing_study
    from voxgan_search.study.spec import load_study

    with tempfile.TemporaryDirectory(prefix="voxgan-bench-search-") as folder:
        folder = Path(folder)
        study_file = folder / "tiny.yaml"
        study_file.write_text(yaml.safe_dump(TINY_STUDY))
        spec = load_study(study_file)
        out = folder / "run"
        settings = SearchSettings(trials=trials, out=out, storage=None, storage_path=str(out / "ray"), resume=False,
                                  max_concurrent=1, cpus_per_trial=1, gpus_per_trial=0, address=None, time_budget=None, quiet=True)
        begin = time.time()
        run_search(spec, settings)
        wall = time.time() - begin
        done = sorted(open_existing_study(None, out, None).get_trials(deepcopy=False), key=lambda t: t.number)
    timed_trials = [t for t in done if SECONDS_ATTR in t.user_attrs]
    own = [t.user_attrs[SECONDS_ATTR] for t in timed_trials]
    ends = [t.datetime_complete.timestamp() for t in timed_trials]
    return {
        "trials_timed": len(own), "wall_s": wall, "wall_per_trial_s": wall / trials,
        "trial_time_per_trial_s": sum(own) / len(own), "overhead_per_trial_s": (wall - sum(own)) / trials,
        "startup_s": ends[0] - begin - own[0],
        "steady_overhead_per_trial_s": (ends[-1] - ends[0] - sum(own[1:])) / (len(own) - 1),
        "shutdown_s": begin + wall - ends[-1],
    }


# ---- e. G's output layer ----------------------------------------------------------------------------

OUTPUT_LAYERS = [(16, 8, 32), (32, 8, 32), (64, 16, 32), (64, 32, 8)]
"""(input channels, input grid, batch) of G's output layer: the default study's G16 and G32 at
16^3, the tutorial widths at 32^3 and at 64^3."""


def bench_output_layer(repeats: int, device: torch.device) -> list[dict]:
    """Forward and backward of G's output layer, a stride-2 transposed convolution to one channel,
    as `nn.ConvTranspose3d` (oneDNN's kernels on CPU) and as voxgan's `ConvTranspose3dToOne`
    (ATen's forward kernel, oneDNN's backward), with the same weights on the same input;
    milliseconds, median of `repeats`."""
    from voxgan.models import ConvTranspose3dToOne

    rows = []
    for channels, grid, batch in OUTPUT_LAYERS:
        x = torch.randn(batch, channels, grid, grid, grid, device=device, requires_grad=True)
        plain = nn.ConvTranspose3d(channels, 1, 4, 2, 1).to(device)
        ours = ConvTranspose3dToOne(channels, 1, 4, 2, 1).to(device)
        ours.load_state_dict(plain.state_dict())
        row = {"channels": channels, "grid": grid, "batch": batch}
        for name, layer in (("onednn_ms", plain), ("aten_ms", ours)):
            row[name] = 1000 * statistics.median(timed(lambda layer=layer: layer(x).sum().backward(), device, repeats))
        rows.append({**row, "ratio": row["onednn_ms"] / row["aten_ms"]})
    return rows


# ---- report ---------------------------------------------------------------------------------------


SECTIONS = ["training", "iou", "chairs", "search", "output", "precision"]


def previous_results(path: Path) -> dict | None:
    """The figures a results file holds (its embedded JSON), or None."""
    if not path.is_file():
        return None
    marker = "<!-- bench-json "
    for line in path.read_text().splitlines():
        if line.startswith(marker) and line.endswith(" -->"):
            return json.loads(line[len(marker) : -len(" -->")])
    return None


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict) -> str:
    env, lines = results["environment"], []
    lines += [f"# voxgan benchmark: {env['device_name']} ({env['mode']})", ""]
    lines += [f"- command: `{command}`" for command in env["commands"]]
    lines += [f"- date: {env['date']}", f"- device: {env['device']} ({env['device_name']})",
              f"- CPU count: {env['cpu_count']} (torch threads {env['torch_threads']})",
              f"- python {env['python']}, torch {env['torch']}, ray {env['ray']}, optuna {env['optuna']}"]
    if env.get("cuda"):
        lines.append(f"- CUDA {env['cuda']}, cuDNN {env['cudnn']}")
    lines += ["", "## a. Training throughput (tutorial networks, samples/s, median of timed epochs)", ""]
    lines += ["| grid | batch | iters x repeats | fp32 reference | voxgan Trainer | precision | ratio | GFLOP/sample | % of bf16 peak |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in results["training"]:
        lines.append(f"| {row['resolution']}^3 | {row['batch']} | {row['iters']} x {row['repeats']} | {fmt(row['reference_sps'], 2)} "
                     f"| {fmt(row['voxgan_sps'], 2)} | {row['voxgan_precision']} | {row['ratio']:.2f}x | {row['gflop_per_sample']:.2f} "
                     f"| {fmt(row['peak_fraction_pct'], 1)} |")
    iou = results.get("iou")
    lines += ["", "## b. IoU matrix", ""]
    if iou:
        lines.append(f"`voxgan.metrics.iou_matrix` of {iou['n']:,} x {iou['n']:,} shapes at {iou['resolution']}^3 "
                     f"(10% occupancy) on {env['device']}: **{iou['seconds']:.2f} s** (median of {iou['repeats']}; "
                     f"runs {', '.join(f'{t:.2f}' for t in iou['times'])} s).")
    else:
        lines.append("not run")
    lines += ["", "## c. Real chairs: load_dataset", ""]
    if results.get("chairs"):
        lines += ["| grid | train / test shapes | cold (fresh cache) | cached (median) |", "|---|---|---|---|"]
        for row in results["chairs"]:
            lines.append(f"| {row['resolution']}^3 | {row['n_train']} / {row['n_test']} | {row['cold_s']:.2f} s | {row['cached_s']:.3f} s |")
    else:
        lines.append(results.get("chairs_note", "skipped"))
    lines += ["", "## d. Search overhead per trial", ""]
    s = results.get("search")
    if s:
        runs = s.get("runs", 1)
        lines += [f"`voxgan_search.runner.run_search`, {s['trials']} trials of a tiny study (procedural 16^3, 40 shapes, width 4, "
                  f"32 shapes per trial, evaluated once), one trial at a time; median of {runs} run(s):", "",
                  "| overhead / trial, steady | start-up (once) | shutdown (once) | trial's own time / trial "
                  "| wall / trial | overhead / trial, start-up included | total wall |", "|---|---|---|---|---|---|---|",
                  f"| **{fmt(s.get('steady_overhead_per_trial_s'), 2)} s** | {fmt(s.get('startup_s'))} s | {fmt(s.get('shutdown_s'))} s "
                  f"| {s['trial_time_per_trial_s']:.2f} s | {s['wall_per_trial_s']:.2f} s | {s['overhead_per_trial_s']:.2f} s | {s['wall_s']:.1f} s |"]
        if s.get("per_run"):
            lines.append("\nEach run: " + "; ".join(f"steady {run['steady_overhead_per_trial_s']:.2f} s, start-up "
                                                   f"{run['startup_s']:.1f} s, wall {run['wall_s']:.1f} s" for run in s["per_run"]))
        if s["trials_timed"] != s["trials"]:
            lines.append(f"\n(only {s['trials_timed']} of {s['trials']} trials recorded their time)")
    else:
        lines.append(results.get("search_note", "skipped"))
    lines += ["", "## e. G's output layer, forward and backward (ms, median)", ""]
    if results.get("output"):
        lines += ["| input | batch | nn.ConvTranspose3d | ConvTranspose3dToOne (ATen forward) | ratio |", "|---|---|---|---|---|"]
        for row in results["output"]:
            lines.append(f"| {row['channels']}@{row['grid']}^3 | {row['batch']} | {row['onednn_ms']:.2f} | {row['aten_ms']:.2f} | {row['ratio']:.2f}x |")
    else:
        lines.append("not run")
    lines += ["", "## g. Training precision: fp32 against bf16 autocast", ""]
    if results.get("precision"):
        r = results["precision"]
        lines += [f"The default study's reference recipe (procedural 16^3), {r['kimg']:g} kimg, seeds "
                  f"{', '.join(map(str, r['seeds']))}, each seed both ways one after the other.", "",
                  "| seed | fp32 s/kimg | bf16 s/kimg | fp32 score | bf16 score |", "|---|---|---|---|---|"]
        for seed in r["seeds"]:
            a, b = (next(x for x in r["runs"] if x["seed"] == seed and x["precision"] == p) for p in ("fp32", "bf16"))
            lines.append(f"| {seed} | {a['s_per_kimg']:.2f} | {b['s_per_kimg']:.2f} | {a['score']:.3f} | {b['score']:.3f} |")
        lines += ["", f"Median speed-up of bf16: {r['speedup_median']:.2f}x; score {r['score_mean']['fp32']:.3f} ± "
                  f"{r['score_std']['fp32']:.3f} (fp32) against {r['score_mean']['bf16']:.3f} ± {r['score_std']['bf16']:.3f} "
                  f"(bf16); seed-paired differences (bf16 - fp32): {', '.join(f'{d:+.3f}' for d in r['score_diffs'])}."]
    else:
        lines.append("not run")
    lines += ["", f"<!-- bench-json {json.dumps(results, default=str)} -->", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the short version (default on CPU)")
    mode.add_argument("--full", action="store_true", help="the full version (default on CUDA)")
    p.add_argument("--out", type=Path, help="results file (default benchmarks/results-<device>.md)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--chairs", type=Path, default=DEFAULT_CHAIRS, help="3D ShapeNets volumetric_data folder")
    p.add_argument("--iters", type=int, help="iterations per timed epoch (default: quick 1, full 20)")
    p.add_argument("--repeats", type=int, help="timed epochs per configuration (default: quick 2, full 5)")
    p.add_argument("--configs", nargs="*", metavar="RxB",
                   help="training configurations as resolution x batch, e.g. 64x32 (default: quick 32x8 32x32 64x8; full all of 64,32 x 8,32,128)")
    p.add_argument("--search-trials", type=int, default=12, help="trials per search (at least 2)")
    p.add_argument("--search-runs", type=int, default=3, help="searches timed; the figures are their medians")
    p.add_argument("--iou-size", type=int, default=1000, metavar="N", help="shapes on each side of the IoU matrix")
    p.add_argument("--iou-resolution", type=int, default=64, metavar="R", help="grid of the IoU matrix's shapes")
    p.add_argument("--peak-tflops", type=float, help="bf16 peak of the device, TFLOP/s (default: 989 for an H200, 835 for an H200 NVL)")
    p.add_argument("--precision-kimg", type=float, default=4.0, help="kimg of each precision run (default 4)")
    p.add_argument("--precision-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the precision runs")
    p.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections not to run")
    p.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    p.add_argument("--append", action="store_true",
                   help="keep the other sections' figures already in --out (to run the sections one at a time)")
    args = p.parse_args(argv)
    if args.search_trials < 2 or args.search_runs < 1:
        p.error("--search-trials must be at least 2 and --search-runs at least 1")

    from voxgan.device import pick_device

    device = pick_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    quick = args.quick or (device.type == "cpu" and not args.full)
    iters = args.iters or (1 if quick else 20)
    repeats = args.repeats or (3 if quick else 5)  # odd, so the median is one measured epoch
    if args.configs:
        configs = [tuple(int(v) for v in item.lower().split("x")) for item in args.configs]
    elif quick:
        configs = [(32, 8), (32, 32), (64, 8)]
    else:
        configs = [(res, batch) for res in (64, 32) for batch in (8, 32, 128)]
    peak = peak_tflops(device, args.peak_tflops)
    out = args.out or ROOT / "benchmarks" / f"results-{device_slug(device)}.md"

    import optuna
    import ray

    if args.only:
        args.skip = [name for name in SECTIONS if name not in args.only]
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, Path.cwd()), *(argv if argv is not None else sys.argv[1:])])
    env = {
        "commands": [command],
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "device": device.type, "device_name": device_name(device), "mode": "quick" if quick else "full",
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "ray": ray.__version__, "optuna": optuna.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
    }
    results: dict = {"environment": env, "training": []}
    previous = previous_results(out) if args.append else None
    if previous:
        for key in ("device", "mode"):
            if previous["environment"][key] != env[key]:
                raise SystemExit(f"--append: {out} holds a {previous['environment'][key]} run, this is {env[key]}")
        env["commands"] = previous["environment"]["commands"] + env["commands"]
        env["date"] = f"{previous['environment']['date']} .. {env['date']}"
        if "training" not in args.skip:  # rows of other configurations stay
            results["training"] = previous.get("training", [])
        kept = {"training": ["training"], "iou": ["iou"], "chairs": ["chairs", "chairs_note"], "search": ["search", "search_note"],
                "output": ["output"], "precision": ["precision"]}
        for section in args.skip:
            for key in kept[section]:
                if key in previous:
                    results[key] = previous[key]
    print(f"voxgan bench ({env['mode']}) on {env['device_name']}; results -> {out}", flush=True)

    if "training" not in args.skip:
        for resolution, batch in configs:
            print(f"  training {resolution}^3 batch {batch}: {iters} iterations x {repeats} repeats ...", flush=True)
            row = bench_training(resolution, batch, iters, repeats, device)
            row["gflop_per_sample"] = gflop_per_sample(resolution, device)
            row["peak_fraction_pct"] = (100 * row["voxgan_sps"] * row["gflop_per_sample"] / (peak * 1e3)) if peak else None
            results["training"] = [r for r in results["training"] if (r["resolution"], r["batch"]) != (resolution, batch)] + [row]
            print(f"    reference {row['reference_sps']:.2f}/s, voxgan {row['voxgan_sps']:.2f}/s ({row['ratio']:.2f}x)", flush=True)
    if "iou" not in args.skip:
        print(f"  iou_matrix {args.iou_size} x {args.iou_size} at {args.iou_resolution}^3 ...", flush=True)
        results["iou"] = bench_iou(args.iou_size, args.iou_resolution, 1 if device.type == "cpu" else 5, device)
    if "chairs" in args.skip:
        results.setdefault("chairs_note", "not run")
    elif not (args.chairs / "chair" / "30" / "train").is_dir():
        results["chairs_note"] = f"skipped: no chairs at {args.chairs} (give --chairs PATH)"
        print("  " + results["chairs_note"], flush=True)
    else:
        print(f"  chairs from {args.chairs} ...", flush=True)
        results["chairs"] = bench_chairs(args.chairs, [32, 64], cached_repeats=3)
    if "search" in args.skip:
        results.setdefault("search_note", "not run")
    else:
        print(f"  search overhead: {args.search_runs} x {args.search_trials} tiny trials ...", flush=True)
        results["search"] = bench_search(args.search_trials, args.search_runs)

    if "output" not in args.skip:
        print("  G's output layer: oneDNN against ATen ...", flush=True)
        results["output"] = bench_output_layer(5, device)
    if "precision" not in args.skip:
        print(f"  precision: fp32 against bf16, {args.precision_kimg:g} kimg x seeds {args.precision_seeds} ...", flush=True)
        results["precision"] = bench_precision(args.precision_kimg, args.precision_seeds, device)

    text = markdown(results)
    print()
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
