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

import numpy as np
import torch

from voxgan import metrics
from voxgan.config import Config
from voxgan.data import VoxelDataset, load_dataset
from voxgan.metric_table import SAMPLE_METRICS
from voxgan.pictures import render_grid
from voxgan.data.split import evenly_spaced
from voxgan.device import pick_device
from voxgan.trainer import Trainer



def train_and_score(cfg: Config, data, save: Path | None = None) -> dict[str, float]:
    """Train one seed; with `save`, keep its checkpoint and a picture of 8 samples there."""
    trainer = Trainer(cfg, data)
    for _ in trainer.train_budget():
        pass
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        trainer.save(save.with_suffix(".pt"))
        render_grid(trainer.sample(8, cfg.eval.seed).numpy(), save.with_suffix(".png"), ncols=8)
    return trainer.evaluate()


def real_reference(cfg: Config, data: VoxelDataset, seed: int) -> dict[str, float]:
    """Real training shapes in place of samples: what a perfect generator would score here.

    A perfect generator draws from the training distribution, so the stand-in "samples" are a
    seeded random draw of training shapes (an evenly spaced or every-other-index pick would follow
    the file order, which groups the 12 rotations of each ShapeNets model, and so draw only a few
    orientations). The classifier test needs three disjoint draws, as an evaluation has: real
    shapes it learns from, stand-ins it learns from, and fresh stand-ins it is tested on. Each
    seed makes other draws, so the reference gets a spread like the trained runs. The stand-ins
    are training shapes, so they would all count as copies: a generator that draws new shapes
    from the data's distribution copies as often as the held-out test shapes do, which is the
    copy share given here (copy_gap 0)."""
    ev, device = cfg.eval, pick_device(cfg.device)
    order = np.random.default_rng(seed).permutation(len(data.train))

    def draw(start: int, count: int) -> torch.Tensor:
        return torch.from_numpy(data.train[np.sort(order[start:start + count])])

    real_test = torch.from_numpy(evenly_spaced(data.test, ev.max_real))
    scores = metrics.real_reference(draw(0, ev.n_samples), real_test, device=device)
    part = min(ev.n_samples, len(order) // 3)  # a small training set gives smaller disjoint draws
    learn_real, stand_in, fresh = draw(0, part), draw(part, part), draw(2 * part, part)
    scores["c2st_acc"] = metrics.c2st_acc(learn_real, stand_in, real_test, fresh[:len(real_test)],
                                          epochs=ev.c2st_epochs, seed=ev.seed, device=device)
    copies = metrics.copy_share_within(data.train, device=device)
    scores.update(copy_share=copies, copy_share_real=copies, copy_gap=0.0)
    return metrics.with_score(scores)


def dataset_for(cfg: Config, loaded: dict[str, VoxelDataset]) -> VoxelDataset:
    """Each distinct data section is loaded once, however many configs and seeds share it."""
    key = cfg.data.model_dump_json()
    if key not in loaded:
        loaded[key] = load_dataset(cfg.data)
    return loaded[key]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path, help="training config YAML files")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, help="write all figures as JSON")
    parser.add_argument("--save", type=Path, help="folder for each run's checkpoint and samples picture")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    datasets: dict[str, VoxelDataset] = {}
    for path in args.configs:
        runs = []
        for seed in args.seeds:
            cfg = Config.load(path, [f"seed={seed}"])
            data = dataset_for(cfg, datasets)
            start = time.perf_counter()
            save = args.save / f"{path.stem}-seed{seed}" if args.save else None
            runs.append(train_and_score(cfg, data, save))
            print(f"{path.name} seed {seed}: score {runs[-1]['score']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        results[path.name] = {"seeds": args.seeds, "runs": runs}
    first = Config.load(args.configs[0])
    data = dataset_for(first, datasets)
    results["real vs real"] = {"seeds": args.seeds, "runs": [real_reference(first, data, seed) for seed in args.seeds]}

    print(f"\n| metric | {' | '.join(results)} |")
    print("|---|" + "---|" * len(results))
    for key in SAMPLE_METRICS:
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
