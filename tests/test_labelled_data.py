"""Labelled .npz files with their own split (the ModelNet layout), the split that follows the
stored shapes, resampling by other factors, and the inputs a user would try on the data CLIs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from voxgan.cli import generate_main, run_cli, train_main
from voxgan.config import DataConfig
from voxgan.data import load_dataset
from voxgan.data.binvox import write_binvox
from voxgan.data.grids import resample
from voxgan.data_cli import show_main
from voxgan.errors import DataError

TINY = ["data.resolution=16", "data.n_shapes=60", "generator.width=4", "discriminator.width=4", "latent_size=16",
        "batch_size=16", "eval.n_samples=12", "eval.max_real=12", "eval.c2st_epochs=1"]


def cubes(n: int, size: int, edge: int, seed: int) -> np.ndarray:
    """n distinct shapes: a cube of `edge` at a seeded random place, plus one random voxel."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, size), bool)
    for volume in out:
        x, y, z = rng.integers(0, size - edge, 3)
        volume[x:x + edge, y:y + edge, z:z + edge] = True
        volume[tuple(rng.integers(0, size, 3))] = True
    return out


def labelled_file(tmp_path: Path) -> Path:
    """Class 0 small cubes, class 1 large ones; an empty training shape and a test copy of a
    training shape to be dropped."""
    x_train = np.concatenate([cubes(12, 16, 3, 0), cubes(8, 16, 8, 1), np.zeros((1, 16, 16, 16), bool)])
    y_train = np.array([0] * 12 + [1] * 8 + [1])
    x_test = np.concatenate([cubes(4, 16, 3, 2), cubes(3, 16, 8, 3), x_train[:1]])
    y_test = np.array([0] * 4 + [1] * 3 + [0])
    path = tmp_path / "labelled.npz"
    np.savez(path, X_train=x_train.astype(np.int32), X_test=x_test.astype(np.int32), y_train=y_train, y_test=y_test)
    return path


def test_a_labelled_npz_keeps_its_split_and_labels(tmp_path: Path) -> None:
    path = labelled_file(tmp_path)
    data = load_dataset(DataConfig(source=str(path), resolution=16, class_names=["small", "large"]))
    assert (len(data.train), len(data.test)) == (20, 7)  # the empty shape and the test copy dropped
    assert data.labelled and data.class_names == ["small", "large"]
    assert data.train_labels.tolist() == [0] * 12 + [1] * 8 and data.test_labels.tolist() == [0] * 4 + [1] * 3
    text = data.summary.text()
    assert "split: the file's own X_train / X_test" in text
    assert "small: 12 train / 4 test" in text and "large: 8 train / 3 test" in text
    assert "dropped: 1 empty shapes, 1 test shapes identical to a training shape" in text

    chosen = load_dataset(DataConfig(source=str(path), resolution=16, classes=[1]))
    assert (len(chosen.train), len(chosen.test)) == (8, 3) and set(chosen.train_labels) == {1}
    assert "class 1: 8 train / 3 test" in chosen.summary.text() and "class 0" not in chosen.summary.text()


def test_labelled_files_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    path = labelled_file(tmp_path)
    unlabelled = tmp_path / "shapes.npy"
    np.save(unlabelled, cubes(10, 16, 3, 0))
    no_y_test = tmp_path / "half.npz"
    np.savez(no_y_test, X_train=cubes(4, 16, 3, 0), X_test=cubes(2, 16, 3, 1), y_train=np.zeros(4, int))
    cases = [
        (DataConfig(source=str(path), classes=[5]), "data.classes names class 5"),
        (DataConfig(source=str(path), class_names=["only one"]), "give a name for each of 0 to 1"),
        (DataConfig(source=str(path), test_fraction=0.3), "its own train/test split"),
        (DataConfig(source=str(unlabelled), classes=[0]), "has no class labels"),
        (DataConfig(source=str(no_y_test)), "no y_test"),
    ]
    for cfg, problem in cases:
        with pytest.raises(DataError, match=problem):
            load_dataset(cfg.model_copy(update={"resolution": 16}))


def test_x_train_alone_is_split_at_random(tmp_path: Path) -> None:
    path = tmp_path / "train_only.npz"
    np.savez(path, X_train=cubes(30, 16, 4, 0))
    data = load_dataset(DataConfig(source=str(path), resolution=16, test_fraction=0.2))
    assert (len(data.train), len(data.test)) == (24, 6) and not data.labelled
    assert "X_train alone" in data.summary.text()


def test_the_split_follows_the_stored_shapes_at_every_resolution_and_up_axis(tmp_path: Path) -> None:
    folder = tmp_path / "chairs"
    folder.mkdir()
    shapes = cubes(40, 32, 6, 4)
    for i, shape in enumerate(shapes):
        write_binvox(folder / f"m{i:02d}.binvox", shape)
    def test_shapes(**keys) -> set[bytes]:
        data = load_dataset(DataConfig(source=str(folder), **keys))
        return {bytes(np.packbits(v)) for v in resample(data.test, 8)}, len(data.test)
    reference, n = test_shapes(resolution=32, up_axis="z")
    assert n == 4
    # the same test shapes, whatever the networks' resolution (compared at a common 8^3)
    assert test_shapes(resolution=16, up_axis="z")[0] == reference
    assert test_shapes(resolution=64, up_axis="z")[0] == reference
    turned = load_dataset(DataConfig(source=str(folder), resolution=32, up_axis="y"))
    plain = load_dataset(DataConfig(source=str(folder), resolution=32, up_axis="z"))
    # turning every shape keeps which of them are test shapes: the same occupancies, in order
    assert [int(v.sum()) for v in turned.test] == [int(v.sum()) for v in plain.test]


@pytest.mark.parametrize("size", [24, 38, 45, 50])
def test_a_thin_connected_shape_stays_connected_at_every_target_size(size: int) -> None:
    volume = np.zeros((1, size, size, size), bool)
    x = y = z = 1
    while max(x, y, z) < size - 2:  # a face-connected staircase, one voxel thick
        volume[0, x, y, z] = True; x += 1
        volume[0, x, y, z] = True; y += 1
        volume[0, x, y, z] = True; z += 1
    volume[0, 3, 3, 1:size - 1] = True  # a one-voxel pole through it
    assert ndimage.label(volume[0])[1] == 1
    for target in (4, 8, 16, 32, 64):
        out = resample(volume, target)
        assert out.shape == (1, target, target, target)
        assert ndimage.label(out[0])[1] == 1, (size, target)


def test_the_summary_says_when_a_resample_is_by_no_whole_factor(tmp_path: Path) -> None:
    path = tmp_path / "odd.npy"
    np.save(path, cubes(10, 38, 5, 0))
    assert "grids of 38^3 reach 32^3 by no whole factor" in load_dataset(DataConfig(source=str(path))).summary.text()
    np.save(path, cubes(10, 64, 5, 0))
    assert "whole factor" not in load_dataset(DataConfig(source=str(path))).summary.text()


def test_data_inputs_get_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    one = tmp_path / "one.npy"
    np.save(one, cubes(10, 16, 3, 0))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((5, 16, 16, 16), bool))
    zero = tmp_path / "zero.npy"
    zero.write_bytes(b"")
    binvoxes = tmp_path / "binvoxes"
    binvoxes.mkdir()
    write_binvox(binvoxes / "whole.binvox", cubes(1, 16, 3, 0)[0])
    cut = binvoxes / "cut.binvox"
    write_binvox(cut, cubes(1, 16, 3, 1)[0])
    cut.write_bytes(cut.read_bytes()[:20])
    cases = [
        ([str(one), "source=other"], "the SOURCE argument"),
        ([str(one), "data.source=other"], "the SOURCE argument"),
        ([str(one), "pattern=*.npy"], "data.pattern=*.npy chooses files of a folder"),
        ([str(empty)], "every one of its 5 shapes is empty"),
        ([str(zero)], "the file is empty (0 bytes)"),
        ([str(binvoxes)], "cut short"),
    ]
    for i, (words, problem) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert run_cli(show_main, ["show", *words, "--out", str(out)]) == 2, words
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err
        assert not out.exists()


def test_keys_come_anywhere_on_the_command_line(tmp_path: Path, capsys) -> None:
    shapes = tmp_path / "shapes.npy"
    np.save(shapes, cubes(10, 16, 3, 0))
    assert run_cli(show_main, ["show", str(shapes), "--out", str(tmp_path / "look"), "resolution=16"]) == 0
    assert "at 16^3" in capsys.readouterr().out
    run = tmp_path / "run"
    assert run_cli(train_main, ["--no-progress", "epochs=1", "--out", str(run), *TINY]) == 0
    assert "resolution: 16" in (run / "config.yaml").read_text()


def test_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    shapes = tmp_path / "shapes.npy"
    np.save(shapes, cubes(10, 16, 3, 0))
    command = (f"{sys.executable} -c 'from voxgan.data_cli import main; main()' show {shapes} "
               f"--out {tmp_path / 'look'} | head -c 10")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.stdout == "data: shap" and "Traceback" not in done.stderr, done.stderr


def test_an_output_folder_that_cannot_be_made_is_one_line(capsys) -> None:
    for out in ("/proc/voxgan-x", "/sys/voxgan-x"):
        assert run_cli(train_main, ["--out", out, *TINY]) == 2
        err = capsys.readouterr().err
        assert f"{out}: cannot create this output folder" in err and err.count("\n") == 1, err


def test_generate_draws_a_page_and_refuses_what_cannot_fit(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert run_cli(train_main, ["--out", str(run), "--no-progress", "epochs=1", *TINY]) == 0
    out = tmp_path / "many"
    assert run_cli(generate_main, ["--checkpoint", str(run / "checkpoint.pt"), "--n", "150", "--out", str(out)]) == 0
    assert np.load(out / "samples.npy").shape == (150, 16, 16, 16)
    few = tmp_path / "few"
    assert run_cli(generate_main, ["--checkpoint", str(run / "checkpoint.pt"), "--n", "64", "--out", str(few)]) == 0
    # the page of 150 is the first 64 samples: the same picture as --n 64, and the same shapes
    np.testing.assert_array_equal(np.load(out / "samples.npy")[:64], np.load(few / "samples.npy"))
    capsys.readouterr()
    huge = tmp_path / "huge"
    assert run_cli(generate_main, ["--checkpoint", str(run / "checkpoint.pt"), "--n", "100000000000",
                                   "--out", str(huge)]) == 2
    err = capsys.readouterr().err
    assert "--n 100000000000" in err and "GB free" in err and err.count("\n") == 1
    assert not huge.exists()


def test_the_shared_modelnet10_file_keeps_its_official_split(modelnet10: Path) -> None:
    data = load_dataset(DataConfig(source=str(modelnet10)))
    text = data.summary.text()
    assert "split: the file's own X_train / X_test" in text and "classes: 10" in text
    # 27 training and 7 test volumes are empty; 62 test volumes repeat a training volume (README)
    assert "dropped: 34 empty shapes, 62 test shapes identical to a training shape" in text
    assert len(data.train) == 3991 - 27 and len(data.test) == 908 - 7 - 62
    assert np.bincount(data.train_labels).tolist()[2] == 889  # chairs
