"""Bad input to the real console scripts: exit status 2, one line on stderr naming the problem,
no traceback, and nothing written.

Each case runs in a fresh folder that is also $HOME and holds $VOXGAN_CACHE, so anything a
refused command writes (an output folder, a SQLite file, a library's cache under $HOME) shows
up as a difference between the folder's contents before and after.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from voxgan.data.binvox import write_binvox

BIN = Path(sys.executable).parent
TINY = {
    "name": "tiny",
    "data": {"source": "procedural", "resolution": 16, "n_shapes": 20},
    "budget": {"kimg": 0.032, "eval_every_kimg": 0.032},
    "confirm": {"top": 0}, "stop_degenerate": False,  # single-run behaviour: no confirmation runs, no early stop
    "space": {"generator": {"width": 4}, "discriminator": {"width": 4}},
}


def study_file(root: Path, change: Callable[[dict], None] | None = None, text: str | None = None) -> str:
    """A tiny study file in `root`, edited by `change` (or with literal `text`)."""
    values = yaml.safe_load(yaml.safe_dump(TINY))
    if change:
        change(values)
    path = root / "study.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(values))
    return str(path)


def data_study(root: Path, source: Path) -> list[str]:
    """voxgan-search on a study whose data is `source` (without the procedural source's n_shapes)."""

    def use(values: dict) -> None:
        values["data"].pop("n_shapes")
        values["data"].update(source=str(source))

    return ["voxgan-search", "--study", study_file(root, use), "--out", "out"]


def search(root: Path, change: Callable[[dict], None]) -> list[str]:
    return ["voxgan-search", "--study", study_file(root, change), "--out", "out"]


def empty_folder(root: Path) -> list[str]:
    (root / "shapes").mkdir()
    return data_study(root, root / "shapes")


def corrupt_mat(root: Path) -> list[str]:
    (root / "shapes").mkdir()
    (root / "shapes" / "chair_000001.mat").write_bytes(b"MATLAB 5.0 MAT-file, but then nothing useful" * 4)
    return data_study(root, root / "shapes")


def wrong_shapes(root: Path) -> list[str]:
    np.save(root / "shapes.npy", np.zeros((6, 8, 8, 9), dtype=np.uint8))
    return data_study(root, root / "shapes.npy")


def train_on(root: Path, name: str, write: Callable[[Path], None]) -> list[str]:
    """voxgan-train on a data file `name` that `write` makes."""
    write(root / name)
    return ["voxgan-train", "--out", "run", "epochs=1", "data.resolution=16", f"data.source={root / name}"]


def mask_0_255(path: Path) -> None:
    volumes = np.zeros((4, 8, 8, 8), dtype=np.uint8)
    volumes[:, 2:5, 2:5, 1:6] = 255
    np.save(path, volumes)


def solid_and_surface(root: Path) -> list[str]:
    models = root / "shapes" / "1a2b" / "models"
    models.mkdir(parents=True)
    for kind in ("solid", "surface"):
        write_binvox(models / f"model_normalized.{kind}.binvox", np.ones((8, 8, 8), bool))
    return ["voxgan-data", "show", str(root / "shapes"), "--out", "pictures"]


def show_into_nonempty(root: Path) -> list[str]:
    np.save(root / "shapes.npy", np.random.default_rng(0).random((4, 8, 8, 8)) < 0.3)
    (root / "pictures").mkdir()
    (root / "pictures" / "mine.png").write_bytes(b"my picture")
    return ["voxgan-data", "show", "shapes.npy", "--out", "pictures"]


def other_objectives(root: Path) -> list[str]:
    """A study 'tiny' with one objective already in the storage; the file asks for two."""
    url = f"sqlite:///{root / 'existing.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.create_study(study_name="tiny", storage=url, directions=["minimize"]).set_metric_names(["score"])
    path = study_file(root, lambda v: v.update(objectives=["nna_gap", "iou_cov"]))
    return ["voxgan-search", "--study", path, "--storage", url, "--out", "out", "--resume"]


def no_finished_trial(root: Path) -> list[str]:
    url = f"sqlite:///{root / 'existing.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tiny", storage=url)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    return ["voxgan-search", "export", "--storage", url, "--out", "best.yaml"]


def not_a_checkpoint(root: Path) -> list[str]:
    (root / "model.pt").write_text("these are not the weights you are looking for\n")
    return ["voxgan-generate", "--checkpoint", "model.pt", "--out", "samples"]


def train_into_nonempty(root: Path) -> list[str]:
    (root / "run").mkdir()
    (root / "run" / "notes.txt").write_text("my earlier results\n")
    return ["voxgan-train", "--out", "run", "epochs=1", "data.resolution=16"]


def lr_zero(v: dict) -> None:
    v["space"]["generator"]["lr"] = {"low": 0, "high": 1e-3}


def depth_high(v: dict) -> None:
    v["space"]["discriminator"]["extra_depth"] = {"low": 0, "high": 9}


def depth_reversed(v: dict) -> None:
    v["space"]["generator"]["extra_depth"] = {"low": 2, "high": 1}


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # name: (setup in the case's folder returning the command, a fragment the message must hold)
    "missing study file": (lambda r: ["voxgan-search", "--study", "nope.yaml", "--out", "out"], "nope.yaml: no such study file"),
    "invalid yaml": (lambda r: ["voxgan-search", "--study", study_file(r, text="name: [tiny\n"), "--out", "out"],
                     "not valid YAML"),
    "unknown study key": (lambda r: search(r, lambda v: v.update(schedular="asha")), "unknown config key 'schedular'"),
    "unknown config key": (lambda r: ["voxgan-train", "--out", "run", "generator.widht=4"],
                           "unknown config key 'generator.widht'"),
    "learning rate <= 0": (lambda r: search(r, lr_zero), "space.generator.lr.low"),
    "batch size 0": (lambda r: search(r, lambda v: v["space"].update(batch_size=[0, 16])), "space.batch_size"),
    "depth above 8": (lambda r: search(r, depth_high), "space.discriminator.extra_depth.high"),
    "depth low above high": (lambda r: search(r, depth_reversed), "low (2) is above high (1)"),
    "empty choice list": (lambda r: search(r, lambda v: v["space"].update(loss=[])), "empty list of choices"),
    "missing data folder": (lambda r: data_study(r, r / "no-such-shapes"), "no-such-shapes: no such file or folder"),
    "empty data folder": (empty_folder, "no .npy/.npz/.npy.gz/.npz.gz/.binvox/.mat files at any depth"),
    "corrupt .mat": (corrupt_mat, "chair_000001.mat: not a readable .mat file"),
    "wrong .npy shapes": (wrong_shapes, "shapes.npy: expected cubic voxel grids"),
    "empty array": (lambda r: train_on(r, "shapes.npy", lambda p: np.save(p, np.zeros((0, 8, 8, 8), bool))),
                    "shapes.npy: holds no shapes"),
    "pickle named .npy": (lambda r: train_on(r, "shapes.npy", lambda p: p.write_bytes(b"\x80\x04K\x01.")),
                          "not a voxel file"),
    "0/255 mask": (lambda r: train_on(r, "shapes.npy", mask_0_255), "0 and 255, an 8-bit mask: save (array > 0)"),
    "one .binvox file": (lambda r: train_on(r, "chair.binvox", lambda p: write_binvox(p, np.ones((8, 8, 8), bool))),
                         "chair.binvox: a .binvox file holds one shape"),
    "broken .npy.gz": (lambda r: train_on(r, "shapes.npy.gz", lambda p: p.write_bytes(b"\x1f\x8b\x08junk")),
                       "not a readable gzip file"),
    "n_shapes with a file source": (lambda r: search(r, lambda v: v["data"].update(source="shapes.npy")),
                                    "data.n_shapes=20 has no effect on a file or folder source"),
    "solid and surface binvox": (solid_and_surface, "choose one with data.pattern='*.solid.binvox'"),
    "data show: bad up axis": (lambda r: ["voxgan-data", "show", "procedural", "up_axis=w", "--out", "pictures"],
                               "'data.up_axis'"),
    "data show: key for another source": (lambda r: ["voxgan-data", "show", "procedural", "data.up_axis=y",
                                                     "--out", "pictures"], "data.up_axis=y has no effect"),
    "data show into a non-empty folder": (show_into_nonempty, "pictures: already exists and is not empty"),
    "unreachable storage": (lambda r: ["voxgan-search", "--study", study_file(r), "--out", "out",
                                       "--storage", "postgresql://u:secret@127.0.0.1:1/x"],
                            "cannot open Optuna storage postgresql://u:***@127.0.0.1:1/x"),
    "dashboard on an unreachable storage": (lambda r: ["voxgan-search", "dashboard", "--storage",
                                                       "postgresql://u:secret@127.0.0.1:1/x", "--run", "run"],
                                            "cannot open Optuna storage postgresql://u:***@127.0.0.1:1/x"),
    "storage without its driver": (lambda r: ["voxgan-search", "--study", study_file(r), "--out", "out",
                                              "--storage", "mysql://u@127.0.0.1:1/x"],
                                   "its database driver 'MySQLdb' is not installed"),
    "sqlite in a missing folder": (lambda r: ["voxgan-search", "--study", study_file(r), "--out", "out",
                                              "--storage", f"sqlite:///{r / 'no-such-dir' / 'study.db'}"],
                                   "cannot open Optuna storage sqlite:///"),
    "gpus on a cpu machine": (lambda r: ["voxgan-search", "--study", study_file(r), "--out", "out",
                                         "--gpus-per-trial", str(torch.cuda.device_count() + 1)], "--gpus-per-trial"),
    "storage path in a file": (lambda r: ["voxgan-search", "--study", study_file(r), "--out", "out",
                                          "--storage-path", study_file(r) + "/ray"], "study.yaml is not a folder"),
    "storage path of an unknown scheme": (lambda r: ["voxgan-search", "--study", study_file(r), "--out", "out",
                                                     "--storage-path", "nosuch://bucket/ray"],
                                          "--storage-path nosuch://bucket/ray: Unrecognized filesystem type"),
    "resume without a study": (lambda r: ["voxgan-search", "--study", study_file(r), "--out", "out", "--resume"],
                               "--resume: no study in out"),
    "study with other objectives": (other_objectives, "study 'tiny' exists with objectives ['score']"),
    "export with no finished trial": (no_finished_trial, "has no finished trial yet"),
    "generate from a non-checkpoint": (not_a_checkpoint, "model.pt: not a voxgan checkpoint"),
    "train into a non-empty folder": (train_into_nonempty, "run: already exists and is not empty"),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with a hash of its contents ('dir' for folders)."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    setup, fragment = CASES[case]
    assert_refused(setup(tmp_path), fragment, tmp_path)


def test_postgresql_without_its_driver_says_what_to_install(tmp_path):
    """psycopg made impossible to import (a package that raises as a missing one does, first on
    the path): the one line names the extra that installs it."""
    shadow = tmp_path / "no-psycopg" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    argv = ["voxgan-search", "--study", study_file(tmp_path), "--out", "out", "--storage", "postgresql://u@/x"]
    assert_refused(argv, "its database driver 'psycopg' is not installed (pip install 'voxgan[postgres]')", tmp_path,
                   {"PYTHONPATH": str(shadow.parent)})


def assert_refused(argv: list[str], fragment: str, tmp_path: Path, extra_env: dict[str, str] | None = None) -> None:
    """Run `argv` in `tmp_path`: exit 2, one line on stderr holding `fragment`, nothing written."""
    before = snapshot(tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "VOXGAN_CACHE": str(tmp_path / "cache"), "PYTHONWARNINGS": "",
           **(extra_env or {})}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("MPLCONFIGDIR", None)
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0], lines[0]
    assert proc.stdout == ""
    after = snapshot(tmp_path)
    new = sorted(set(after) - set(before))
    assert after == before, f"a refused command wrote files: {new}"


