"""The trainer: it learns, it resumes exactly, it reports divergence, its checkpoints are safe."""

import pickle

import numpy as np
import pytest
import torch

from conftest import tiny_config as tiny
from voxgan.config import Config
from voxgan.errors import CheckpointError, Diverged
from voxgan.checkpoint import load_generator, read_checkpoint
from voxgan.trainer import Trainer

def test_epochs_run_and_report_stats(tiny_data):
    trainer = Trainer(tiny(), tiny_data)
    stats = [trainer.train_epoch() for _ in range(3)]
    assert [s.epoch for s in stats] == [1, 2, 3]
    for s in stats:
        assert np.isfinite([s.g_loss, s.d_loss, s.d_real, s.d_fake]).all()
        assert 0 <= s.d_real <= 1 and 0 <= s.d_fake <= 1 and s.d_updates == 1.0
    assert trainer.history[-1]["epoch"] == 3


def test_generator_learns_the_occupancy_of_the_data(tiny_data):
    """A few epochs with workable learning rates move G from ~50% occupancy toward the data's."""
    cfg = tiny(generator={"width": 8, "lr": 2e-3}, discriminator={"width": 8, "lr": 2e-3, "beta1": 0.5})
    trainer = Trainer(cfg, tiny_data)
    before = (trainer.sample(32, 0) > 0.5).float().mean().item()
    for _ in range(15):
        trainer.train_epoch()
    after = (trainer.sample(32, 0) > 0.5).float().mean().item()
    real = tiny_data.train.mean()
    assert abs(after - real) < abs(before - real)


def test_resume_continues_exactly(tmp_path, tiny_data):
    straight = Trainer(tiny(), tiny_data)
    for _ in range(4):
        straight.train_epoch()

    first = Trainer(tiny(), tiny_data)
    for _ in range(2):
        first.train_epoch()
    first.save(tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt", data=tiny_data)
    assert resumed.epoch == 2
    for _ in range(2):
        resumed.train_epoch()
    key = ("g_loss", "d_loss", "d_real", "d_fake")
    assert [[r[k] for k in key] for r in resumed.history] == [[r[k] for k in key] for r in straight.history]
    for a, b in zip(resumed.G.state_dict().values(), straight.G.state_dict().values()):
        assert torch.equal(a, b)


def test_d_accuracy_rule_skips_updates(tiny_data):
    cfg = tiny(d_accuracy_threshold=0.05, discriminator={"width": 8, "lr": 1e-2})
    trainer = Trainer(cfg, tiny_data)
    stats = [trainer.train_epoch() for _ in range(3)]
    assert min(s.d_updates for s in stats) < 1.0


def test_divergence_is_a_clear_result(tiny_data):
    """z ~ N(0, 1e38) overflows float32 to inf, so the very first losses are NaN."""
    trainer = Trainer(tiny(latent_std=1e38), tiny_data)
    with pytest.raises(Diverged, match=r"diverged at epoch 1"):
        trainer.train_epoch()


def test_evaluate_returns_every_metric(tiny_data):
    trainer = Trainer(tiny(), tiny_data)
    trainer.train_epoch()
    scores = trainer.evaluate()
    for key in ("iou_mmd", "iou_cov", "iou_1nna", "c2st_acc", "d_real", "d_fake", "diversity", "occupancy_ratio"):
        assert key in scores and np.isfinite(scores[key])
    assert trainer.evaluate() == scores  # deterministic per eval seed


def test_checkpoints_load_without_code_and_refuse_foreign_files(tmp_path, tiny_data):
    trainer = Trainer(tiny(), tiny_data)
    trainer.train_epoch()
    path = trainer.save(tmp_path / "ck.pt")
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1
    G, cfg = load_generator(path, device="cpu")
    assert cfg == trainer.cfg
    assert torch.equal(G.state_dict()["layers.0.0.weight"], trainer.G.state_dict()["layers.0.0.weight"])

    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a voxgan checkpoint"):
        read_checkpoint(tmp_path / "text.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="not a voxgan checkpoint"):
        read_checkpoint(tmp_path / "evil.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="marker"):
        read_checkpoint(tmp_path / "other.pt")
