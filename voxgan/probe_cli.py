"""`voxgan-probe --checkpoint CK --data FILE --out DIR`: the 3D-GAN paper's evaluation of a
trained discriminator (voxgan.probe): a linear SVM on D's features, fitted on the file's own
training split and scored on its own test split, beside the same probe on a D with random
initial weights (the floor) and the paper's figure.

Bad input (no discriminator, unlabelled data, no test split, grids D does not take) is one line
and exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from voxgan.checkpoint import load_discriminator
from voxgan.cli import Parser, make_output_folder, refuse_nonempty, run_cli
from voxgan.config import Config, apply_overrides
from voxgan.data.dataset import labelled_split
from voxgan.data.voxio import read_voxel_file
from voxgan.errors import DataError, VoxganError
from voxgan.models import Discriminator, init_weights
from voxgan.probe import PAPER_ACCURACY, ProbeResult, probe_discriminator

RESULTS = "probe.json"
CONFUSION = "confusion.png"


def parser() -> Parser:
    p = Parser(prog="voxgan-probe",
               description="Classify labelled shapes with a linear SVM on a trained discriminator's features "
                           "(Wu et al. 2016, Table 1), beside a random-weight D of the same architecture.",
               epilog="Keys are data config keys, with or without 'data.': class_names=[bathtub,bed,...] "
                      "classes=[1,2] up_axis=z. See docs/metrics.md, 'The discriminator probe'.")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.pt of a training run (it holds D)")
    p.add_argument("--data", type=Path, required=True,
                   help="an .npz with X_train, X_test, y_train, y_test (e.g. ../shared/data/modelnet10/modelnet10.npz)")
    p.add_argument("--out", type=Path, required=True, help="folder for probe.json and confusion.png (new or empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds, the calibration order and the random D")
    p.add_argument("--resample", action="store_true",
                   help="resample the file's grids to D's resolution when they differ (as training would)")
    p.add_argument("--no-floor", action="store_true", help="skip the random-weight D")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes that fit the SVM's cross-validation folds side by side (default: one per core)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="data config keys")
    return p


def probe_main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.jobs < 1:
        raise VoxganError("--jobs must be at least 1")
    refuse_nonempty(args.out, "the probe's results")
    D, cfg = load_discriminator(args.checkpoint, args.device)
    device = next(D.parameters()).device
    overrides = [item if item.startswith("data.") else f"data.{item}" for item in args.overrides]
    data_cfg = Config.from_dict(apply_overrides(
        {"data": {"source": str(args.data), "resolution": cfg.data.resolution}}, overrides)).data
    file = read_voxel_file(args.data)
    if not file.labelled:
        raise DataError(f"{args.data}: has no class labels (y_train / y_test); the probe classifies labelled shapes")
    if not file.has_own_split:
        raise DataError(f"{args.data}: has no X_test; the probe scores the file's own test split")
    stored = file.volumes.shape[1]
    if stored != cfg.data.resolution and not args.resample:
        raise DataError(f"{args.data}: holds {stored}^3 grids and this D takes {cfg.data.resolution}^3; pass "
                        f"--resample to resample them, or probe a D trained at {stored}^3")
    split = labelled_split(args.data, file, data_cfg)
    print(f"probe of {args.checkpoint} (D at {cfg.data.resolution}^3, width {cfg.discriminator.width}, "
          f"norm {cfg.discriminator.norm}) on {args.data.name}: {len(split.train)} training / {len(split.test)} "
          f"test shapes, {len(np.unique(split.train_labels))} classes; the file's split as it is, "
          f"{split.test_seen_in_train()} test shapes identical to a training shape", file=sys.stderr)
    runs = {"trained D": probe_discriminator(D, split.train, split.train_labels, split.test, split.test_labels,
                                             device, args.seed, jobs=args.jobs)}
    if not args.no_floor:
        runs["random D (floor)"] = probe_discriminator(random_discriminator(cfg, args.seed).to(device), split.train,
                                                       split.train_labels, split.test, split.test_labels, device,
                                                       args.seed, jobs=args.jobs)
    make_output_folder(args.out)
    names = [split.class_names[c] for c in runs["trained D"].classes]
    from voxgan.pictures import plot_confusion  # matplotlib only once the input is accepted

    plot_confusion(runs["trained D"].confusion, names, args.out / CONFUSION,
                   title=f"{args.checkpoint.name}: accuracy {runs['trained D'].accuracy:.3f}")
    (args.out / RESULTS).write_text(json.dumps(
        {"checkpoint": str(args.checkpoint), "data": str(args.data), "class_names": names,
         "test_seen_in_train": split.test_seen_in_train(), "paper": PAPER_ACCURACY,
         **{name: result.as_dict() for name, result in runs.items()}}, indent=2))
    print(table(runs))
    print(f"wrote {args.out / RESULTS}, {args.out / CONFUSION}")
    return 0


def random_discriminator(cfg: Config, seed: int) -> Discriminator:
    """A D of the checkpoint's architecture with the trainer's initial weights, drawn with `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        D = Discriminator(cfg)
        D.apply(init_weights)
    return D


def table(runs: dict[str, ProbeResult]) -> str:
    """The probe's figures, one row per D, and the paper's."""
    first = next(iter(runs.values()))
    lines = [f"features: {', '.join(first.blocks)} max-pooled to 2^3: {first.n_features} per shape",
             f"{'':18} {'accuracy':>9} {'per-class':>9} {'C':>7} {'CV acc':>7} {'seconds':>8}"]
    for name, r in runs.items():
        lines.append(f"{name:18} {r.accuracy:9.3f} {r.mean_class_accuracy:9.3f} {r.C:7.0e} {r.cv_accuracy:7.3f} "
                     f"{r.seconds:8.1f}" + "".join(f"  ({note})" for note in r.notes))
    lines.append(f"{'paper, ModelNet10':18} {PAPER_ACCURACY['ModelNet10']:9.3f}  (Wu et al. 2016, Table 1: a 64^3 D "
                 f"trained on ShapeNet)")
    return "\n".join(lines)


def main() -> None:
    sys.exit(run_cli(probe_main))
