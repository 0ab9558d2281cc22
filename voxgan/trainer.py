"""The tutorial's training loop as a library: one epoch at a time, evaluated, checkpointed, resumed.

One iteration (SEED-SPEC): sample z, G makes a fake batch, D is trained on a real batch (label 1)
and the fake batch (label 0) with d_loss the mean of the two; then new z, and G is trained through
D with "real" labels while D's weights stay fixed. The paper's rule can skip D's update while its
accuracy on the last batch is at or above `d_accuracy_threshold`.

The loop keeps running sums on the device and reads them once per epoch, so on CUDA there is no
host-device synchronisation per step (except with the accuracy rule, whose decision needs one).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from voxgan import metrics
from voxgan.config import Config, NetConfig, apply_overrides
from voxgan.data import VoxelDataset, load_dataset
from voxgan.errors import CheckpointError, ConfigError, Diverged
from voxgan.losses import discriminator_loss, generator_loss
from voxgan.models import Discriminator, Generator, init_weights

CHECKPOINT_FORMAT = "voxgan-checkpoint-v1"
STAT_KEYS = ("g_loss", "d_loss", "d_real", "d_fake", "d_acc", "d_updates")


def pick_device(name: str) -> torch.device:
    """`auto` takes CUDA when there is one; asking for CUDA without one is refused by the caller."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(params, net: NetConfig, device: torch.device) -> torch.optim.Optimizer:
    """The configured optimiser; on CUDA the fused (or foreach) implementation."""
    fast = {"fused": True} if device.type == "cuda" else {}
    if net.optimizer == "adam":
        return torch.optim.Adam(params, lr=net.lr, betas=(net.beta1, net.beta2), weight_decay=net.weight_decay, **fast)
    if net.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=net.lr, betas=(net.beta1, net.beta2), weight_decay=net.weight_decay, **fast)
    if net.optimizer == "sgd":
        return torch.optim.SGD(params, lr=net.lr, momentum=net.momentum, weight_decay=net.weight_decay, **fast)
    if net.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=net.lr, alpha=net.alpha, momentum=net.momentum, weight_decay=net.weight_decay)
    if net.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=net.lr, rho=net.alpha, weight_decay=net.weight_decay)
    raise ValueError(f"unknown optimizer {net.optimizer!r}")


@dataclass
class EpochStats:
    """Means over one epoch's iterations; d_updates is the share of iterations that updated D."""

    epoch: int
    g_loss: float
    d_loss: float
    d_real: float
    d_fake: float
    d_acc: float
    d_updates: float
    seconds: float
    samples_per_s: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class Trainer:
    """A 3D-GAN training run built from a `Config`.

    `train_epoch()` runs one epoch and returns its stats; `evaluate()` scores the generator on the
    held-out real shapes; `save(path)` / `Trainer.resume(path)` checkpoint and continue exactly.
    """

    def __init__(self, cfg: Config, data: VoxelDataset | None = None):
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device=cuda was asked for but no CUDA device is available")
        self.data = data if data is not None else load_dataset(cfg.data)
        self.amp_dtype = torch.bfloat16 if (cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")) else None
        self.memory_format = torch.channels_last_3d if self.device.type == "cuda" else torch.contiguous_format
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.G = Generator(cfg)
            self.D = Discriminator(cfg)
            self.G.apply(init_weights)
            self.D.apply(init_weights)
        self.G.to(self.device, memory_format=self.memory_format)
        self.D.to(self.device, memory_format=self.memory_format)
        self.g_opt = make_optimizer(self.G.parameters(), cfg.generator, self.device)
        self.d_opt = make_optimizer(self.D.parameters(), cfg.discriminator, self.device)
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(cfg.seed)
        # The training set lives on the device as uint8 (1 byte a voxel); batches are indexed there.
        self.train_set = torch.from_numpy(np.ascontiguousarray(self.data.train).view(np.uint8)).to(self.device)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self._last_d_acc = 0.0

    # ---- training ------------------------------------------------------------------------------

    def sample_latent(self, n: int) -> torch.Tensor:
        return sample_latent(self.cfg, n, self.rng)

    def _batches(self) -> list[torch.Tensor]:
        n, size = len(self.train_set), self.cfg.batch_size
        order = torch.randperm(n, generator=self.rng, device=self.device)
        if n < size:
            return [order]
        return list(order[: n - n % size].view(-1, size))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _as_input(self, volumes: torch.Tensor) -> torch.Tensor:
        return volumes.unsqueeze(1).float().contiguous(memory_format=self.memory_format)

    def train_epoch(self) -> EpochStats:
        """One pass over the training set. Raises `Diverged` on a NaN or infinite loss."""
        self.G.train()
        self.D.train()
        kind, real_label, threshold = self.cfg.loss, self.cfg.real_label, self.cfg.d_accuracy_threshold
        sums = torch.zeros(len(STAT_KEYS), device=self.device)
        updated, skipped = torch.ones((), device=self.device), torch.zeros((), device=self.device)
        start = time.perf_counter()
        batches = self._batches()
        for index in batches:
            real = self._as_input(self.train_set[index])
            n = real.shape[0]

            # D on a real and a fake batch (G's output detached: only D learns here).
            with self._autocast():
                fake = self.G(self.sample_latent(n))
                real_logits = self.D(real)
                fake_logits = self.D(fake.detach())
                d_loss = discriminator_loss(kind, real_logits, fake_logits, real_label)
            with torch.no_grad():
                d_acc = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
            update_d = threshold is None or self._last_d_acc < threshold
            if update_d:
                self.d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                self.d_opt.step()
            if threshold is not None:
                self._last_d_acc = float(d_acc)  # the rule's decision needs the value on the host

            # G through the frozen D with "real" targets: D's weights get no gradient.
            self.D.requires_grad_(False)
            with self._autocast():
                g_fake_logits = self.D(self.G(self.sample_latent(n)))
                g_loss = generator_loss(kind, g_fake_logits)
            self.g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            self.g_opt.step()
            self.D.requires_grad_(True)

            with torch.no_grad():
                sums += torch.stack([
                    g_loss.detach(), d_loss.detach(),
                    torch.sigmoid(real_logits.float()).mean(), torch.sigmoid(fake_logits.float()).mean(),
                    d_acc, updated if update_d else skipped,
                ])
        means = (sums / len(batches)).tolist()  # the epoch's one synchronisation
        seconds = time.perf_counter() - start
        self.epoch += 1
        stats = EpochStats(self.epoch, *means, seconds=seconds, samples_per_s=len(batches) * self.cfg.batch_size / seconds)
        self.history.append(stats.as_dict())
        if not (math.isfinite(stats.g_loss) and math.isfinite(stats.d_loss)):
            raise Diverged(self.epoch)
        return stats

    # ---- sampling and evaluation -----------------------------------------------------------------

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n occupancy-probability volumes (n, R, R, R) on the CPU; see `generate`."""
        return generate(self.G, self.cfg, n, seed, self.amp_dtype)

    @torch.no_grad()
    def d_mean(self, volumes: torch.Tensor, chunk: int = 64) -> float:
        """The trained D's mean output (probability of "real") on 0/1 volumes, in eval mode."""
        was_training = self.D.training
        self.D.eval()
        total = 0.0
        for start in range(0, len(volumes), chunk):
            batch = self._as_input(volumes[start : start + chunk].to(self.device))
            with self._autocast():
                total += self.D.probability(batch).float().sum().item()
        self.D.train(was_training)
        return total / len(volumes)

    def evaluate(self) -> dict[str, float]:
        """All metrics of `voxgan.metrics` between fresh samples (thresholded at 0.5) and the
        held-out real test shapes, plus D's mean output on each. Deterministic per eval.seed."""
        ev = self.cfg.eval
        real_test = torch.from_numpy(evenly_spaced(self.data.test, ev.max_real))
        real_train = torch.from_numpy(evenly_spaced(self.data.train, ev.n_samples))
        fake = self.sample(ev.n_samples, ev.seed) > 0.5
        fake_heldout = self.sample(len(real_test), ev.seed + 1) > 0.5
        scores = metrics.voxel_metrics(real_test, fake, device=self.device)
        scores["c2st_acc"] = metrics.c2st_acc(
            real_train, fake, real_test, fake_heldout, epochs=ev.c2st_epochs, seed=ev.seed, device=self.device
        )
        scores["d_real"] = self.d_mean(real_test)
        scores["d_fake"] = self.d_mean(fake)
        return {key: float(value) for key, value in scores.items()}

    # ---- checkpoints -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly; only tensors and plain values, so that
        `torch.load(weights_only=True)` can open it without running code."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "g_optimizer": self.g_opt.state_dict(),
            "d_optimizer": self.d_opt.state_dict(),
            "rng": self.rng.get_state(),
            "rng_device": self.device.type,
            "last_d_acc": self._last_d_acc,
            "history": self.history,
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (a crash mid-write leaves the previous one intact)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state(), tmp)
        tmp.replace(path)
        return path

    def load_state(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.g_opt.load_state_dict(state["g_optimizer"])
        self.d_opt.load_state_dict(state["d_optimizer"])
        if state["rng_device"] == self.device.type:
            self.rng.set_state(state["rng"])
        self.epoch = state["epoch"]
        self.history = list(state["history"])
        self._last_d_acc = state["last_d_acc"]

    @classmethod
    def resume(cls, path: str | Path, overrides: list[str] | None = None, data: VoxelDataset | None = None) -> Trainer:
        """Rebuild the run a checkpoint came from and continue where it stopped. `overrides`
        (`key=value`) may change what does not alter the networks, such as `epochs` or `device`."""
        state = read_checkpoint(path)
        cfg = Config.from_dict(apply_overrides(state["config"], overrides or []))
        trainer = cls(cfg, data)
        try:
            trainer.load_state(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: does not fit the config it is resumed with ({exc})") from None
        return trainer


def sample_latent(cfg: Config, n: int, generator: torch.Generator) -> torch.Tensor:
    """z as the config says: N(0, latent_std) (tutorial) or U(0, 1) (paper)."""
    shape = (n, cfg.latent_size)
    if cfg.latent_dist == "uniform":
        return torch.rand(shape, generator=generator, device=generator.device)
    return torch.randn(shape, generator=generator, device=generator.device) * cfg.latent_std


@torch.no_grad()
def generate(G: Generator, cfg: Config, n: int, seed: int, amp_dtype: torch.dtype | None = None, chunk: int = 64) -> torch.Tensor:
    """n occupancy-probability volumes (n, R, R, R) on the CPU, a pure function of the weights
    and seed. G runs in eval mode (batch norm uses its running statistics), as at test time."""
    device = next(G.parameters()).device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    was_training = G.training
    G.eval()
    out = []
    for start in range(0, n, chunk):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out.append(G(sample_latent(cfg, min(chunk, n - start), gen)).float().squeeze(1).cpu())
    G.train(was_training)
    return torch.cat(out)


def load_generator(path: str | Path, device: str = "auto") -> tuple[Generator, Config]:
    """The trained generator of a checkpoint and its config, without loading any data."""
    state = read_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    G = Generator(cfg)
    G.load_state_dict(state["generator"])
    return G.to(pick_device(device)), cfg


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, loaded with weights_only=True; anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for foreign files; all mean "not a checkpoint"
        raise CheckpointError(f"{path}: not a voxgan checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a voxgan checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return state


def evenly_spaced(volumes: np.ndarray, count: int | None) -> np.ndarray:
    """A deterministic subset of `count` items spread over the whole array (all if count is None
    or larger), so that evaluation sees every part of a sorted data set (all chair models)."""
    if count is None or count >= len(volumes):
        return volumes
    return volumes[np.linspace(0, len(volumes) - 1, count).round().astype(int)]
