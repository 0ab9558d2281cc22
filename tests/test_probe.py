"""The discriminator probe (Wu et al. 2016, Table 1): known answers for the classifier, the
feature recipe on the paper's 64^3 D, features independent of batch neighbours, the command end
to end with its bad inputs, probe_acc at evaluation time, and the real ModelNet10 file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from voxgan.checkpoint import write_checkpoint
from voxgan.cli import run_cli
from voxgan.config import Config
from voxgan.data.dataset import labelled_split
from voxgan.data.voxio import read_voxel_file
from voxgan.errors import ConfigError
from voxgan.models import Discriminator, init_weights
from voxgan.probe import EVAL_C_GRID, EVAL_FOLDS, calibrated, d_features, fit_probe, probe_discriminator
from voxgan.probe_cli import probe_main
from voxgan.trainer import Trainer

CPU = torch.device("cpu")


def test_separable_features_are_classified_perfectly_and_shuffled_labels_at_chance() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (4, 20))
    labels = rng.integers(0, 4, 400)
    features = centres[labels] + rng.normal(0, 0.5, (400, 20))
    result = fit_probe(features[:300], labels[:300], features[300:], labels[300:], c_grid=(1e-2, 1.0))
    assert result.accuracy == 1.0 and result.mean_class_accuracy == 1.0
    assert np.trace(result.confusion) == 100 and result.n_features == 20
    noise = rng.normal(0, 1, (400, 20))  # features that say nothing of the labels
    chance = fit_probe(noise[:300], labels[:300], noise[300:], labels[300:], c_grid=(1e-2, 1.0))
    assert 0.1 < chance.accuracy < 0.4  # 0.25 expected; 100 test shapes


def test_the_paper_s_64_cube_D_gives_layers_2_to_4_pooled_to_2_cubed() -> None:
    """At 64^3 the features are the 2nd, 3rd and 4th convolution layers (16^3, 8^3, 4^3), max-pooled
    with kernels 8, 4, 2: 8 * (128 + 256 + 512) = 7168 values at the tutorial's width 64."""
    D = Discriminator(Config.from_dict({"data": {"resolution": 64}}))
    volumes = np.zeros((2, 64, 64, 64), bool)
    volumes[0, 10:40, 10:40, 5:20] = True
    features, blocks = d_features(D.eval(), volumes, CPU)
    assert blocks == ["16^3 x 128", "8^3 x 256", "4^3 x 512"] and features.shape == (2, 7168)
    # a max-pool: the pooled block 4^3 x 512 is its 2^3 maxima
    x = torch.from_numpy(volumes[:1].astype(np.float32))[:, None]
    for layer in list(D.layers)[:4]:
        x = layer(x)
    expected = torch.nn.functional.max_pool3d(x, 2).flatten(1)[0].detach().numpy()
    assert np.allclose(features[0, -4096:], expected, atol=1e-6)


def test_features_of_a_shape_do_not_depend_on_its_batch_neighbours() -> None:
    torch.manual_seed(0)
    D = Discriminator(tiny_config())
    D.apply(init_weights)
    rng = np.random.default_rng(1)
    volumes = rng.random((150, 16, 16, 16)) < 0.1
    ready = calibrated(D, volumes, CPU)
    assert not ready.training
    features, _ = d_features(ready, volumes, CPU)
    order = rng.permutation(150)
    shuffled, _ = d_features(ready, volumes[order], CPU)
    assert np.allclose(shuffled, features[order], atol=1e-5)
    norm = next(m for m in ready.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert norm.num_batches_tracked.item() == 3  # re-estimated over the 150 shapes, 64 at a time


def two_class_file(path: Path, size: int = 16) -> Path:
    """Class 0: boxes lying flat; class 1: tall columns; each at a seeded random place."""
    rng = np.random.default_rng(0)

    def shapes(n: int, extent: tuple[int, int, int]) -> np.ndarray:
        out = np.zeros((n, size, size, size), bool)
        for volume in out:
            x, y, z = (rng.integers(0, size - e + 1) for e in extent)
            volume[x:x + extent[0], y:y + extent[1], z:z + extent[2]] = True
        return out

    flat, tall = (8, 8, 2), (3, 3, 12)
    np.savez(path, X_train=np.concatenate([shapes(40, flat), shapes(40, tall)]),
             y_train=np.repeat([0, 1], 40), X_test=np.concatenate([shapes(15, flat), shapes(15, tall)]),
             y_test=np.repeat([0, 1], 15))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint trained briefly on the two-class file, with probe_acc at evaluation, and the file."""
    folder = tmp_path_factory.mktemp("probe")
    data = two_class_file(folder / "two.npz")
    cfg = Config.from_dict({**tiny_config().to_dict(), "data": {"source": str(data), "resolution": 16},
                            "kimg": 0.2, "eval": {"n_samples": 10, "max_real": 10, "c2st_epochs": 1, "probe": True}})
    trainer = Trainer(cfg)
    for _ in trainer.train_budget():
        pass
    scores = trainer.evaluate()
    assert 0.5 < scores["probe_acc"] <= 1.0 and scores["probe_s"] > 0  # 30 test shapes of 2 easy classes
    return trainer.save(folder / "checkpoint.pt"), data


def test_voxgan_probe_reports_the_trained_and_the_random_D_beside_the_paper(trained, tmp_path, capsys) -> None:
    checkpoint, data = trained
    out = tmp_path / "probe"
    assert run_cli(probe_main, ["--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out),
                                "class_names=[flat,tall]"]) == 0
    printed = capsys.readouterr()
    results = json.loads((out / "probe.json").read_text())
    trained_d, floor = results["trained D"], results["random D (floor)"]
    arrays = np.load(data)
    seen = sum(shape.tobytes() in {t.tobytes() for t in arrays["X_train"]} for shape in arrays["X_test"])
    assert results["class_names"] == ["flat", "tall"] and results["test_seen_in_train"] == seen
    assert trained_d["n_train"] == 80 and trained_d["n_test"] == 30 and trained_d["classes"] == [0, 1]
    assert np.trace(trained_d["confusion"]) == round(trained_d["accuracy"] * 30)
    assert trained_d["C"] in (1e-4, 1e-3, 1e-2, 1e-1) and 0 <= floor["accuracy"] <= 1
    assert "random D (floor)" in printed.out and "0.910" in printed.out
    assert "features: 8^3 x 8, 4^3 x 16 max-pooled to 2^3: 192 per shape" in printed.out
    assert (out / "confusion.png").stat().st_size > 1000
    # the same D, the same folds, the folds fitted one after another instead of side by side:
    # the same figures
    again = tmp_path / "again"
    assert run_cli(probe_main, ["--checkpoint", str(checkpoint), "--data", str(data), "--out", str(again),
                                "--no-floor", "--jobs", "1"]) == 0
    alone = json.loads((again / "probe.json").read_text())["trained D"]
    assert (alone["accuracy"], alone["C"], alone["cv_accuracy"]) == (
        trained_d["accuracy"], trained_d["C"], trained_d["cv_accuracy"])


def test_voxgan_probe_refuses_bad_input_in_one_line(trained, tmp_path, capsys) -> None:
    checkpoint, data = trained
    generator_only = tmp_path / "g.pt"
    state = torch.load(checkpoint, weights_only=True)
    write_checkpoint({key: value for key, value in state.items() if key not in ("discriminator", "format")},
                     generator_only)
    unlabelled, no_test, coarse = tmp_path / "u.npz", tmp_path / "t.npz", tmp_path / "c.npz"
    arrays = np.load(data)
    np.savez(unlabelled, X_train=arrays["X_train"], X_test=arrays["X_test"])
    np.savez(no_test, X_train=arrays["X_train"], y_train=arrays["y_train"])
    np.savez(coarse, X_train=arrays["X_train"][:, ::2, ::2, ::2], X_test=arrays["X_test"][:, ::2, ::2, ::2],
             y_train=arrays["y_train"], y_test=arrays["y_test"])
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("keep")
    cases = [
        (generator_only, data, tmp_path / "o1", "holds no discriminator"),
        (checkpoint, unlabelled, tmp_path / "o2", "has no class labels"),
        (checkpoint, no_test, tmp_path / "o3", "has no X_test"),
        (checkpoint, coarse, tmp_path / "o4", "holds 8^3 grids and this D takes 16^3; pass --resample"),
        (checkpoint, tmp_path / "nothing.npz", tmp_path / "o5", "nothing.npz"),
        (checkpoint, data, used, "already exists and is not empty"),
    ]
    for ck, source, out, problem in cases:
        assert run_cli(probe_main, ["--checkpoint", str(ck), "--data", str(source), "--out", str(out)]) == 2, problem
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1, err
        assert out == used or not out.exists()
    assert (used / "mine.txt").read_text() == "keep"
    assert run_cli(probe_main, ["--checkpoint", str(checkpoint), "--data", str(data), "--out",
                                str(tmp_path / "o7"), "--jobs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--jobs must be at least 1" in err and err.count("\n") == 1 and not (tmp_path / "o7").exists()
    assert run_cli(probe_main, ["--checkpoint", str(checkpoint), "--data", str(coarse), "--out",
                                str(tmp_path / "o6"), "--resample", "--no-floor"]) == 0


def test_probe_acc_needs_labelled_data() -> None:
    with pytest.raises(ConfigError, match="eval.probe classifies labelled shapes"):
        Trainer(tiny_config(eval={"probe": True}))


def test_a_random_D_classifies_modelnet10_far_above_chance(modelnet10: Path) -> None:
    """The floor on the real file: a width-4 random D at 32^3 (224 features) with the evaluation's
    cheaper cross-validation, on the official 3,991 / 908 split as it is."""
    cfg = Config.from_dict({"data": {"source": str(modelnet10), "resolution": 32},
                            "discriminator": {"width": 4}})
    file = read_voxel_file(modelnet10)
    split = labelled_split(modelnet10, file, cfg.data)
    assert (len(split.train), len(split.test), split.test_seen_in_train()) == (3991, 908, 62)
    torch.manual_seed(0)
    D = Discriminator(cfg)
    D.apply(init_weights)
    result = probe_discriminator(D, split.train, split.train_labels, split.test, split.test_labels, CPU,
                                 c_grid=EVAL_C_GRID, folds=EVAL_FOLDS)
    assert result.n_features == 224 and len(result.classes) == 10
    assert result.accuracy > 0.6 and result.mean_class_accuracy > 0.5  # chance: 0.11 and 0.10
