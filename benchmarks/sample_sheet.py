"""One picture to judge generators by eye: real test shapes in the first row, then a row of
samples from each checkpoint, all rendered the same way.

    python benchmarks/sample_sheet.py --out sheet.png --n 8 tutorial=a.pt reference=b.pt best=c.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from voxgan.data import load_dataset
from voxgan.pictures import render_grid
from voxgan.checkpoint import load_generator
from voxgan.data.split import evenly_spaced
from voxgan.sampling import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="label=checkpoint.pt, one row each")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=8, help="shapes per row")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the samples' z")
    parser.add_argument("--title")
    args = parser.parse_args()

    rows, labels = [], []
    for item in args.checkpoints:
        label, _, path = item.partition("=")
        G, cfg = load_generator(path, device="cpu")
        if not rows:  # the real row comes from the first checkpoint's data
            rows.append(evenly_spaced(load_dataset(cfg.data).test, args.n) > 0)
            labels.append("real test shapes")
        rows.append(generate(G, cfg, args.n, args.seed).numpy() > 0.5)
        labels.append(label)
    render_grid(np.concatenate(rows), args.out, ncols=args.n, title=args.title, row_labels=labels)
    print(args.out)


if __name__ == "__main__":
    main()
