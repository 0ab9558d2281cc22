"""`voxgan-data show` and the data summary a training run prints first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxgan.cli import run_cli, train_main
from voxgan.data.binvox import write_binvox
from voxgan.data.procedural import generate_shapes
from voxgan.data_cli import show_main


def test_show_prints_the_summary_and_writes_the_grid(tmp_path: Path, capsys) -> None:
    shapes = tmp_path / "shapes"
    for i, volume in enumerate(generate_shapes(6, 16, ["chair", "table"], seed=2)):
        (shapes / f"m{i}").mkdir(parents=True)
        write_binvox(shapes / f"m{i}" / "model.binvox", np.rot90(volume, -1, axes=(1, 2)))
    np.save(shapes / "placeholder.npy", np.zeros((1, 16, 16, 16), bool))
    out = tmp_path / "look"
    assert run_cli(show_main, ["show", str(shapes), "resolution=16", "data.test_fraction=0.3", "--out", str(out),
                               "--n", "4"]) == 0
    printed = capsys.readouterr().out
    assert "data: shapes (7 files: 6 .binvox, 1 .npy)" in printed
    assert "shapes: 4 train / 2 test at 16^3" in printed
    assert ".binvox: y, turned to z; .npy: z (data.up_axis=auto)" in printed
    assert "dropped: 1 empty shapes" in printed and "split: each distinct shape at random (seed 0" in printed
    picture = out / "shapes.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000
    assert run_cli(show_main, ["show", str(shapes), "--out", str(out)]) == 2  # never overwrites


def test_training_prints_the_data_summary_first(tmp_path: Path, capsys) -> None:
    tiny = ["data.resolution=16", "data.n_shapes=30", "generator.width=4", "discriminator.width=4", "latent_size=8",
            "batch_size=8", "eval.n_samples=4", "eval.max_real=4", "eval.c2st_epochs=1", "epochs=1"]
    assert run_cli(train_main, ["--out", str(tmp_path / "run"), "--no-progress", *tiny]) == 0
    err = capsys.readouterr().err
    assert "data: procedural(chair,table,lamp; seed 0)" in err and "  split: the last 3 of 30 generated shapes" in err
