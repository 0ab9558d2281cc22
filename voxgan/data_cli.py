"""`voxgan-data show SOURCE [key=value ...] --out DIR`: a look at a data set before training.

Prints the data summary every training run prints (counts, resolution, occupancy, split, dropped
empties and duplicates, up axis) and writes `shapes.png`, training shapes above test shapes,
rendered exactly as samples are, so that a user sees at once whether chairs stand upright.
Bad input is one line and exit status 2, as for the other commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from voxgan.cli import Parser, make_output_folder, refuse_nonempty, run_cli
from voxgan.config import Config, apply_overrides
from voxgan.data import load_dataset
from voxgan.errors import VoxganError

PICTURE = "shapes.png"


def parser() -> Parser:
    p = Parser(prog="voxgan-data", description="Look at a data set before training on it.")
    commands = p.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print the data summary and write a PNG grid of train and test shapes",
                               description="Print the data summary and write DIR/shapes.png: training shapes "
                               "in the top rows, test shapes below, rendered as samples are.",
                               epilog="Keys are data config keys, with or without 'data.': "
                               "resolution=32 up_axis=y split=files category=chair rotations=[1]. "
                               "See docs/data.md.")
    show.add_argument("source", help="procedural, a 3D ShapeNets volumetric_data folder, a voxel file or a folder")
    show.add_argument("overrides", nargs="*", metavar="key=value", help="data config keys")
    show.add_argument("--out", type=Path, required=True, help="folder for shapes.png (new or empty)")
    show.add_argument("--n", type=int, default=8, help="shapes of each side in the picture (default 8)")
    return p


def show_main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.n < 1:
        raise VoxganError("--n must be at least 1")
    overrides = [f"data.{item}" if not item.startswith("data.") else item for item in args.overrides]
    if any(item.split("=", 1)[0] == "data.source" for item in overrides):
        raise VoxganError("the source is the SOURCE argument of voxgan-data show; remove source=")
    cfg = Config.from_dict(apply_overrides({"data": {"source": args.source}}, overrides)).data
    refuse_nonempty(args.out, "the picture")
    data = load_dataset(cfg)
    # Imported once the data is accepted: matplotlib writes its font cache under $HOME on import.
    from voxgan.pictures import render_grid
    from voxgan.data.split import evenly_spaced

    print(data.summary.text())
    train, test = evenly_spaced(data.train, args.n), evenly_spaced(data.test, args.n)
    ncols = min(8, max(len(train), len(test)))
    rows = [np.concatenate([part, np.zeros((-len(part) % ncols, *part.shape[1:]), bool)]) for part in (train, test)]
    make_output_folder(args.out)
    path = render_grid(np.concatenate(rows), args.out / PICTURE, ncols=ncols,
                       title=f"{data.name}: {len(train)} of {len(data.train)} training shapes (top), "
                             f"{len(test)} of {len(data.test)} test shapes (bottom)")
    print(f"wrote {path}")
    return 0


def main() -> None:
    sys.exit(run_cli(show_main))
