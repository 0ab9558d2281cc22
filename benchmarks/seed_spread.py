"""Retrain configs with several seeds and print each metric's mean and spread.

A search's "improvement" means something only above the noise of retraining the same config
with another seed. This trains every config once per seed, scores it with the trainer's own
evaluation, and adds the real-versus-real reference (real training shapes scored as if they
were samples, by the same metric code).

    python benchmarks/seed_spread.py baseline.yaml best.yaml --seeds 0 1 2 --out spread.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from search.objective import derived
from voxgan import metrics
from voxgan.config import Config
from voxgan.data import load_dataset
from voxgan.pictures import render_grid
from voxgan.trainer import Trainer, evenly_spaced

KEYS = ("score", "iou_1nna", "c2st_acc", "iou_mmd", "iou_cov", "diversity", "occupancy_ratio")


def train_and_score(cfg: Config, data, save: Path | None = None) -> dict[str, float]:
    """Train one seed; with `save`, keep its checkpoint and a picture of 8 samples there."""
    trainer = Trainer(cfg, data)
    for _ in range(cfg.epochs):
        trainer.train_epoch()
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        trainer.save(save.with_suffix(".pt"))
        render_grid(trainer.sample(8, cfg.eval.seed).numpy(), save.with_suffix(".png"), ncols=8)
    return derived(trainer.evaluate())


def real_reference(cfg: Config, data) -> dict[str, float]:
    """Real training shapes in place of samples: what a perfect generator would score here."""
    ev = cfg.eval
    real_test = torch.from_numpy(evenly_spaced(data.test, ev.max_real))
    stand_in = torch.from_numpy(evenly_spaced(data.train, ev.n_samples))
    held_out = torch.from_numpy(evenly_spaced(data.train[1::2], len(real_test)))
    scores = metrics.voxel_metrics(real_test, stand_in)
    scores["c2st_acc"] = metrics.c2st_acc(torch.from_numpy(evenly_spaced(data.train[::2], ev.n_samples)), stand_in,
                                          real_test, held_out, epochs=ev.c2st_epochs, seed=ev.seed)
    return derived(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path, help="training config YAML files")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="write all figures as JSON")
    parser.add_argument("--save", type=Path, help="folder for each run's checkpoint and samples picture")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    datasets: dict[str, object] = {}  # loaded once per distinct data config
    for path in args.configs:
        runs = []
        for seed in args.seeds:
            cfg = Config.load(path, [f"seed={seed}"])
            key = cfg.data.model_dump_json()
            data = datasets[key] = datasets.get(key) or load_dataset(cfg.data)
            start = time.perf_counter()
            save = args.save / f"{path.stem}-seed{seed}" if args.save else None
            runs.append(train_and_score(cfg, data, save))
            print(f"{path.name} seed {seed}: score {runs[-1]['score']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        results[path.name] = {"seeds": args.seeds, "runs": runs}
    results["real vs real"] = {"runs": [real_reference(Config.load(args.configs[0]), data)]}

    print(f"\n| metric | {' | '.join(results)} |")
    print("|---|" + "---|" * len(results))
    for key in KEYS:
        cells = []
        for entry in results.values():
            values = [run[key] for run in entry["runs"]]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.3f}{spread}")
        print(f"| {key} | {' | '.join(cells)} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
