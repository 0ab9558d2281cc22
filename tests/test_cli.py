"""voxgan-train and voxgan-generate write what they promise."""

import csv
import json

import numpy as np
import torch
import trimesh

from voxgan.cli import EXIT_DIVERGED, generate_main, run_cli, train_main
from voxgan.metrics import largest_part_shares

TINY = ["data.resolution=16", "data.n_shapes=60", "generator.width=4", "discriminator.width=4", "latent_size=16",
        "batch_size=16", "eval.n_samples=12", "eval.max_real=12", "eval.c2st_epochs=1"]
METRICS = ("iou_mmd", "iou_cov", "iou_1nna", "c2st_acc", "d_real", "d_fake", "diversity", "occupancy_ratio")


def test_train_writes_every_output_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert run_cli(train_main, ["--out", str(out), "--no-progress", "--checkpoint-every", "1", "epochs=2", *TINY]) == 0
    for name in ("config.yaml", "checkpoint.pt", "losses.csv", "metrics.json", "samples.png", "losses.png"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((out / "losses.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and all(np.isfinite(metrics[key]) for key in METRICS)

    # Resuming to 3 epochs appends the third row and keeps the first two.
    assert run_cli(train_main, ["--out", str(out), "--no-progress", "--resume", str(out / "checkpoint.pt"), "epochs=3"]) == 0
    rows = list(csv.DictReader((out / "losses.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 3


def test_train_reports_divergence_as_a_result(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(train_main, ["--out", str(out), "--no-progress", "epochs=2", "latent_std=1e38", *TINY]) == EXIT_DIVERGED
    assert json.loads((out / "metrics.json").read_text()) == {
        "status": "diverged", "epoch": 1, "message": "diverged at epoch 1: loss is not finite"}
    assert "diverged at epoch 1" in capsys.readouterr().err


def test_generate_writes_arrays_pictures_and_meshes(tmp_path):
    run = tmp_path / "run"
    assert run_cli(train_main, ["--out", str(run), "--no-progress", "epochs=1", *TINY]) == 0
    out = tmp_path / "samples"
    assert run_cli(generate_main, ["--checkpoint", str(run / "checkpoint.pt"), "--n", "3", "--out", str(out),
                                   "--mesh", "--threshold", "0.3"]) == 0
    volumes = np.load(out / "samples.npy")
    assert volumes.shape == (3, 16, 16, 16) and volumes.dtype == bool
    assert (out / "samples.png").stat().st_size > 1000
    for i, volume in enumerate(volumes):
        if volume.any():
            mesh = trimesh.load(out / f"shape_{i:03d}.stl")
            assert mesh.is_watertight
            assert trimesh.load(out / f"shape_{i:03d}.obj").faces.shape == mesh.faces.shape
    # The same checkpoint and seed give the same shapes.
    again = tmp_path / "again"
    assert run_cli(generate_main, ["--checkpoint", str(run / "checkpoint.pt"), "--n", "3", "--out", str(again),
                                   "--threshold", "0.3"]) == 0
    np.testing.assert_array_equal(np.load(again / "samples.npy"), volumes)
    # For printing: each shape's largest part alone, a subset of the raw shape in one piece.
    whole = tmp_path / "whole"
    assert run_cli(generate_main, ["--checkpoint", str(run / "checkpoint.pt"), "--n", "3", "--out", str(whole),
                                   "--threshold", "0.3", "--largest-part"]) == 0
    parts = np.load(whole / "samples.npy")
    assert not (parts & ~volumes).any()
    np.testing.assert_array_equal(largest_part_shares(parts), [1.0 if v.any() else 0.0 for v in volumes])
