"""`voxgan-train` and `voxgan-generate`: single training runs and sampling from a checkpoint.

User errors (bad flags, configs, data, checkpoints) print one line `error: ...` and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from voxgan.config import PRESETS, Config, apply_overrides, preset
from voxgan.errors import Diverged, VoxganError
from voxgan.runlog import RunLog
from voxgan.checkpoint import load_generator
from voxgan.sampling import generate_chunks
from voxgan.trainer import Trainer

EXIT_USAGE = 2
EXIT_DIVERGED = 3


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2 (argparse prints usage as well by default),
    and whose `key=value` overrides may come anywhere, before or after the options."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """Like argparse's, except that `key=value` words after an option (`--out DIR epochs=2`)
        join the `overrides` positional instead of being 'unrecognized arguments'."""
        parsed, extra = self.parse_known_args(args, namespace)
        keys = [word for word in extra if "=" in word and not word.startswith("-")]
        unknown = [word for word in extra if word not in keys]
        if unknown or (keys and not hasattr(parsed, "overrides")):
            self.error(f"unrecognized arguments: {' '.join(unknown or keys)}")
        if keys:
            parsed.overrides = [*parsed.overrides, *keys]
        return parsed


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Turn user errors into one line and exit status 2; anything else is a real bug and raises."""
    try:
        return main(argv)
    except VoxganError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`voxgan-data show ... | head`): Python's documented way to exit
        # quietly, pointing stdout at devnull so that the interpreter's final flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def make_output_folder(out: Path) -> Path:
    """Create `out` (and its parents) or say in one line why it cannot be created or written
    (`/proc/x`, a read-only disk, a file in the way)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VoxganError(f"{out}: cannot create this output folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise VoxganError(f"{out}: this output folder is not writable")
    return out


def refuse_nonempty(out: Path, what: str) -> None:
    """Never overwrite a user's results: an output folder must be new or empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VoxganError(f"{out}: already exists and is not empty; choose a new --out for {what}")


# ---- voxgan-train -------------------------------------------------------------------------------


def train_parser() -> Parser:
    p = Parser(
        prog="voxgan-train",
        description="Train a 3D-GAN. With neither --config nor --preset, trains the tutorial recipe "
        "on the embedded procedural shapes at 32^3.",
        epilog="Overrides are dotted config keys, e.g. data.resolution=32 epochs=2 generator.lr=1e-3 "
        "data.source=../shared/data/3dshapenets/volumetric_data. See docs/config.md for every key.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="YAML config file (e.g. one written by voxgan-search export)")
    source.add_argument("--preset", choices=sorted(PRESETS), help="a named recipe: tutorial = SEED-SPEC exactly (64^3); paper = the paper's variations; reference = the tutorial with the stabilisers that make it train")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT", help="continue a run from its checkpoint (into --out)")
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty, unless resuming into it)")
    p.add_argument("--checkpoint-every", type=int, default=10, metavar="N", help="epochs between checkpoints (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p


def load_config(args: argparse.Namespace) -> Config:
    if args.config:
        return Config.load(args.config, args.overrides)
    if args.preset:
        return preset(args.preset, args.overrides)
    return Config.from_dict(apply_overrides({}, args.overrides))


def train_main(argv: list[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    if args.checkpoint_every < 1:
        raise VoxganError("--checkpoint-every must be at least 1")
    out: Path = args.out
    if args.resume:
        if args.config or args.preset:
            raise VoxganError("--resume takes its config from the checkpoint; give only key=value overrides")
        trainer = Trainer.resume(args.resume, args.overrides)
    else:
        refuse_nonempty(out, "this run")
        trainer = Trainer(load_config(args))
    make_output_folder(out)
    trainer.cfg.save(out / "config.yaml")
    print(f"training on {trainer.device}\n{trainer.data.summary.text()}", file=sys.stderr)

    budget = {"epochs": trainer.cfg.epochs} if trainer.cfg.kimg is None else {"kimg": trainer.cfg.kimg}
    result = {"status": "finished", **budget}
    log = RunLog(out)
    bar = tqdm(trainer.train_budget(), desc="training", unit="stretch", disable=args.no_progress, file=sys.stderr)
    try:
        for stats in bar:
            log.write(dataclasses.asdict(stats))
            bar.set_postfix(g=f"{stats.g_loss:.3f}", d=f"{stats.d_loss:.3f}", sps=f"{stats.samples_per_s:.0f}")
            if trainer.epoch % args.checkpoint_every == 0:
                trainer.save(out / "checkpoint.pt")
    except Diverged as exc:
        log.write(trainer.history[-1])
        result = {"status": "diverged", "epoch": exc.epoch, "message": str(exc)}
    finally:
        bar.close()
        log.close()

    if result["status"] == "diverged":
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        print(f"voxgan-train: {result['message']}; no metrics computed", file=sys.stderr)
        return EXIT_DIVERGED
    from voxgan.pictures import plot_curves, render_grid  # see `generate_main`

    trainer.save(out / "checkpoint.pt")
    scores = trainer.evaluate()
    (out / "metrics.json").write_text(json.dumps({**result, **scores}, indent=2))
    render_grid(trainer.sample(16, trainer.cfg.eval.seed).numpy(), out / "samples.png", title=f"epoch {trainer.epoch}")
    plot_curves(trainer.history, out / "losses.png")
    print(json.dumps(scores, indent=2))
    return 0


# ---- voxgan-generate ----------------------------------------------------------------------------


def generate_parser() -> Parser:
    p = Parser(prog="voxgan-generate", description="Sample shapes from a trained generator checkpoint.")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.pt from voxgan-train or voxgan-search export")
    p.add_argument("--n", type=int, default=16, help="number of shapes (default 16)")
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--threshold", type=float, default=0.5, help="occupancy threshold (default 0.5)")
    p.add_argument("--mesh", action="store_true", help="also write each shape as .obj and .stl surface meshes")
    p.add_argument("--largest-part", action="store_true",
                   help="keep only each shape's largest connected part (drops floating debris, for printing; "
                        "the metrics always score the raw samples)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    return p


PAGE = 64
"""Samples drawn in `samples.png` at most: a page a person can look at; the .npy has them all."""


def generate_main(argv: list[str] | None = None) -> int:
    args = generate_parser().parse_args(argv)
    if args.n < 1:
        raise VoxganError("--n must be at least 1")
    if not 0.0 < args.threshold < 1.0:
        raise VoxganError("--threshold must be between 0 and 1")
    refuse_nonempty(args.out, "the samples")
    G, cfg = load_generator(args.checkpoint, device=args.device)
    refuse_too_many(args.n, cfg.data.resolution, args.out)
    # Imported once the input is accepted: matplotlib writes its font cache under $HOME on import.
    from voxgan.export import keep_largest_parts, save_mesh
    from voxgan.pictures import render_grid

    make_output_folder(args.out)
    size = cfg.data.resolution
    volumes = np.lib.format.open_memmap(args.out / "samples.npy", mode="w+", dtype=bool, shape=(args.n, size, size, size))
    raw_voxels = kept_voxels = 0
    done = 0
    with tqdm(total=args.n, desc="sampling", unit="shape", disable=args.n <= PAGE, file=sys.stderr) as bar:
        for chunk in generate_chunks(G, cfg, args.n, args.seed):
            shapes = (chunk > args.threshold).numpy()
            if args.largest_part:
                raw_voxels += int(shapes.sum())
                shapes = keep_largest_parts(shapes)
                kept_voxels += int(shapes.sum())
            volumes[done:done + len(shapes)] = shapes
            if args.mesh:
                for i, volume in enumerate(shapes, start=done):
                    if volume.any():
                        save_mesh(volume, args.out / f"shape_{i:03d}.obj")
                        save_mesh(volume, args.out / f"shape_{i:03d}.stl")
            done += len(shapes)
            bar.update(len(shapes))
    volumes.flush()
    render_grid(np.asarray(volumes[:PAGE]), args.out / "samples.png",
                title=f"the first {PAGE} of {args.n} samples" if args.n > PAGE else None)
    kept = f" (largest parts only: {kept_voxels / max(raw_voxels, 1):.1%} of the voxels kept)" if args.largest_part else ""
    print(f"wrote {args.n} shapes to {args.out}{kept}")
    return 0


def refuse_too_many(n: int, resolution: int, out: Path) -> None:
    """Refuse an --n whose samples.npy (one byte per voxel) cannot fit on the disk that holds --out."""
    needed = n * resolution ** 3
    existing = next(parent for parent in (out, *out.parents) if parent.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise VoxganError(f"--n {n}: {n} shapes at {resolution}^3 need {needed / 1e9:.1f} GB for samples.npy and "
                          f"{existing} has {free / 1e9:.1f} GB free; ask for fewer")


def train() -> None:
    sys.exit(run_cli(train_main))


def generate() -> None:
    sys.exit(run_cli(generate_main))


if __name__ == "__main__":
    train()
