"""The tutorial's training loop as a library: one epoch at a time, evaluated, checkpointed, resumed.

One iteration (SEED-SPEC): sample z, G makes a fake batch, D is trained on a real batch (label 1)
and the fake batch (label 0) with d_loss the mean of the two; then new z, and G is trained through
D with "real" labels while D's weights stay fixed. The paper's rule can skip D's update while its
accuracy on the last batch is at or above `d_accuracy_threshold`.

The loop keeps running sums on the device and reads them once per epoch, so on CUDA there is no
host-device synchronisation per step (except with the accuracy rule, whose decision needs one).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxgan import metrics
from voxgan.checkpoint import read_checkpoint, write_checkpoint
from voxgan.config import Config, apply_overrides
from voxgan.data import VoxelDataset, load_dataset
from voxgan.data.split import evenly_spaced
from voxgan.degeneracy import degenerate_reason
from voxgan.device import autocast_dtype, pick_device
from voxgan.ema import WarmupEMA
from voxgan.errors import CheckpointError, ConfigError, Diverged
from voxgan.losses import discriminator_loss, generator_loss, gradient_penalty, r1_penalty
from voxgan.metric_table import PER_EPOCH
from voxgan.probe import EVAL_C_GRID, EVAL_FOLDS, probe_discriminator
from voxgan.models import (
    MEMORY_FORMAT, Discriminator, Generator, apply_optimizer_settings, configure_optimizer, init_weights,
)
from voxgan.sampling import generate, sample_latent
from voxgan.scoring import sample_scores

EpochStats = dataclasses.make_dataclass(
    "EpochStats", [("epoch", int), *((name, float) for name in PER_EPOCH), ("seconds", float)])
EpochStats.__doc__ = """Means over a stretch of iterations (an epoch, or up to a kimg mark with `train_to_kimg`)
of the metric table's per-epoch metrics; d_updates is the share of D steps that updated D; kimg
is the total so far."""
D_STATS = ("d_loss", "d_real", "d_fake", "d_acc", "d_updates")
"""What `_discriminator_step` returns, in order."""


class Trainer:
    """A 3D-GAN training run built from a `Config`.

    `train_epoch()` runs one epoch, `train_to_kimg(k)` runs until k thousand real shapes in all have
    been shown to D (budgets in kimg), `train_budget()` the config's whole budget; each returns
    (or yields) a stretch's stats. `evaluate()` scores the generator on
    the held-out real shapes; `save(path)` / `Trainer.resume(path)` checkpoint and continue exactly.
    """

    def __init__(self, cfg: Config, data: VoxelDataset | None = None, device: torch.device | None = None):
        """`device`: where to train, when the caller knows better than `cfg.device` (a search trial
        runs where Ray placed it: `voxgan_search.tuning.trainable.trial_device`)."""
        self.cfg = cfg
        """The run's config as given, its schedule included: what checkpoints keep and replays start from."""
        self.now = cfg
        """The settings in effect now: `cfg` with its schedule's due entries applied (`_enter_schedule`)."""
        self._next_switch = cfg.schedule[0].shapes if cfg.schedule else None
        self.device = device or pick_device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device=cuda was asked for but no CUDA device is available")
        self.data = data if data is not None else load_dataset(cfg.data)
        if cfg.eval.probe and not self.data.labelled:
            raise ConfigError(f"eval.probe classifies labelled shapes and {self.data.name} has no labels (an .npz "
                              f"with X_train / X_test / y_train / y_test has them)")
        self.amp_dtype = autocast_dtype(cfg, self.device)
        """Training's autocast precision (None: fp32); samples are always made in fp32."""
        self.memory_format = MEMORY_FORMAT
        # cuDNN's autotuner stays off: it picks kernels by timing, so two runs of one config could
        # take different kernels and different paths; the same config and seed repeat on a GPU.

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.G = Generator(cfg)
            self.D = Discriminator(cfg)
            self.G.apply(init_weights)
            self.D.apply(init_weights)
        if cfg.g_output_init == "occupancy":
            self.G.start_at_occupancy(float(self.data.train.mean()))
        self.G.to(self.device, memory_format=self.memory_format)
        self.D.to(self.device, memory_format=self.memory_format)
        self.g_opt = configure_optimizer(self.G, cfg.generator, self.device)
        self.d_opt = configure_optimizer(self.D, cfg.discriminator, self.device)
        # The average of G's weights that sampling, evaluation and export use (None: G itself).
        self.G_ema = WarmupEMA(self.G, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(cfg.seed)
        # The training set lives on the device as uint8 (1 byte a voxel); batches are indexed there.
        self.train_set = torch.from_numpy(np.ascontiguousarray(self.data.train).view(np.uint8)).to(self.device)
        self.epoch = 0
        self.shapes_seen = 0
        self.history: list[dict[str, float]] = []
        self._last_d_acc = 0.0
        self._order = torch.empty(0, dtype=torch.long, device=self.device)  # this pass's shuffled indices
        self._cursor = 0  # how many of them have been used
        self._copy_reference: float | None = None
        self._flags = torch.tensor([0.0, 1.0], device=self.device)  # "D updated?" without a copy per step

    @property
    def sampler(self) -> Generator:
        """The generator that makes samples: G's moving average when there is one."""
        return self.G if self.G_ema is None else self.G_ema.module

    @property
    def kimg(self) -> float:
        """Thousands of real training shapes shown to D so far (StyleGAN's budget unit)."""
        return self.shapes_seen / 1000

    # ---- training ------------------------------------------------------------------------------

    def sample_latent(self, n: int) -> torch.Tensor:
        return sample_latent(self.cfg, n, self.rng)

    def _real_batch(self) -> torch.Tensor:
        """The next batch of a shuffled pass over the training set; a new pass (a fresh
        permutation) starts when the rest of this one is smaller than a batch."""
        n = len(self.train_set)
        size = min(self.cfg.batch_size, n)
        if self._cursor + size > len(self._order):
            self._order = torch.randperm(n, generator=self.rng, device=self.device)
            self._cursor = 0
        index = self._order[self._cursor : self._cursor + size]
        self._cursor += size
        self.shapes_seen += size
        return self._as_input(self.train_set[index])

    def iterations_per_epoch(self) -> int:
        """One epoch shows D every whole batch of the training set once (d_steps batches an iteration)."""
        batches = max(1, len(self.train_set) // self.cfg.batch_size)
        return max(1, batches // self.cfg.d_steps)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _as_input(self, volumes: torch.Tensor) -> torch.Tensor:
        return volumes.unsqueeze(1).float().contiguous(memory_format=self.memory_format)

    def noise_std(self) -> float:
        """The instance noise's standard deviation now: constant, or fading to 0 at instance_noise_kimg."""
        fade = self.now.instance_noise_kimg
        return self.now.instance_noise * (1.0 if fade is None else max(0.0, 1.0 - self.kimg / fade))

    def _noisy(self, volumes: torch.Tensor) -> torch.Tensor:
        """What D sees: the volume plus instance noise, when the config asks for it."""
        std = self.noise_std()
        if std == 0:
            return volumes
        noise = torch.randn(volumes.shape, generator=self.rng, device=volumes.device, dtype=volumes.dtype)
        return volumes + std * noise

    def _enter_schedule(self) -> None:
        """Take the settings the schedule gives at the shapes seen so far: the optimisers' (their
        moments kept), G's moving average (started from G when the schedule turns it on), and
        what the steps read from `now` (instance noise, penalties)."""
        self.now = self.cfg.in_effect(self.shapes_seen)
        self._next_switch = next((e.shapes for e in self.cfg.schedule if e.shapes > self.shapes_seen), None)
        apply_optimizer_settings(self.g_opt, self.now.generator)
        apply_optimizer_settings(self.d_opt, self.now.discriminator)
        if self.now.ema_decay == 0:
            self.G_ema = None
        elif self.G_ema is None:
            self.G_ema = WarmupEMA(self.G, self.now.ema_decay)
        else:
            self.G_ema.decay = self.now.ema_decay

    def _discriminator_step(self) -> torch.Tensor:
        """One D update on a real and a fake batch; returns its stats (no host sync)."""
        cfg = self.now
        real = self._noisy(self._real_batch())
        with torch.no_grad(), self._autocast():
            fake = self._noisy(self.G(self.sample_latent(real.shape[0])).float())
        with self._autocast():
            real_logits = self.D(real)
            fake_logits = self.D(fake)
            d_loss = discriminator_loss(cfg.loss, real_logits, fake_logits, cfg.real_label)
        if cfg.gradient_penalty > 0:
            d_loss = d_loss + cfg.gradient_penalty * gradient_penalty(self.D, real, fake, self.rng)
        if cfg.r1_gamma > 0:
            d_loss = d_loss + 0.5 * cfg.r1_gamma * r1_penalty(self.D, real)
        with torch.no_grad():
            d_acc = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
        update = cfg.d_accuracy_threshold is None or self._last_d_acc < cfg.d_accuracy_threshold
        if update:
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_opt.step()
        if cfg.d_accuracy_threshold is not None:
            self._last_d_acc = float(d_acc)  # the rule's decision needs the value on the host
        return torch.stack([
            d_loss.detach(), torch.sigmoid(real_logits.detach().float()).mean(),
            torch.sigmoid(fake_logits.detach().float()).mean(), d_acc, self._flags[int(update)],
        ])

    def _generator_step(self, n: int) -> torch.Tensor:
        """One G update through the frozen D with "real" targets; returns G's loss."""
        self.D.requires_grad_(False)
        with self._autocast():
            g_loss = generator_loss(self.cfg.loss, self.D(self._noisy(self.G(self.sample_latent(n)))))
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self.G_ema.update_parameters(self.G)
        return g_loss.detach()

    def _train(self, iterations: int) -> EpochStats:
        """`iterations` times: d_steps D updates, then one G update. The sums stay on the device
        and are read once at the end: the stretch's one host synchronisation."""
        self.G.train()
        self.D.train()
        start, shapes_before = time.perf_counter(), self.shapes_seen
        g_sum = torch.zeros((), device=self.device)
        d_sums = torch.zeros(5, device=self.device)
        for _ in range(iterations):
            if self._next_switch is not None and self.shapes_seen >= self._next_switch:
                self._enter_schedule()
            for _ in range(self.cfg.d_steps):
                d_sums += self._discriminator_step()
            g_sum += self._generator_step(min(self.cfg.batch_size, len(self.train_set)))
        d_means = (d_sums / (iterations * self.cfg.d_steps)).tolist()
        g_loss = float(g_sum) / iterations
        seconds = time.perf_counter() - start
        return EpochStats(epoch=self.epoch, g_loss=g_loss, **dict(zip(D_STATS, d_means)), seconds=seconds,
                          samples_per_s=(self.shapes_seen - shapes_before) / seconds, kimg=self.kimg)

    def _record(self, stats: EpochStats) -> EpochStats:
        """Keep a stretch's stats in the history; a non-finite loss ends the run as `Diverged`."""
        self.history.append(dataclasses.asdict(stats))
        if not (math.isfinite(stats.g_loss) and math.isfinite(stats.d_loss)):
            raise Diverged(max(stats.epoch, 1), kimg=stats.kimg)
        return stats

    def train_epoch(self) -> EpochStats:
        """One pass over the training set. Raises `Diverged` on a NaN or infinite loss."""
        self.epoch += 1
        return self._record(self._train(self.iterations_per_epoch()))

    def train_to_kimg(self, kimg: float) -> EpochStats:
        """Train until at least `kimg` thousand real shapes in all have been shown to D, in whole
        iterations. The mark is absolute, so a run stops at the same iteration however its budget
        is cut into stretches (a search's evaluations, a retrain's epochs). `epoch` then counts the
        passes over the training set begun so far."""
        per_iteration = min(self.cfg.batch_size, len(self.train_set)) * self.cfg.d_steps
        iterations = math.ceil((round(kimg * 1000) - self.shapes_seen) / per_iteration)
        if iterations < 1:
            raise ValueError(f"already at {self.kimg} kimg, not below {kimg}")
        self.epoch = max(self.epoch, math.ceil((self.shapes_seen + 1) / len(self.train_set)))
        stats = self._train(iterations)
        self.epoch = math.ceil(self.shapes_seen / len(self.train_set))
        stats.epoch = self.epoch
        return self._record(stats)

    def train_budget(self) -> Iterator[EpochStats]:
        """The config's budget a stretch at a time: `epochs` epochs, or with `kimg` set, one
        training set's worth of shapes at a time up to `kimg` thousand."""
        if self.cfg.kimg is None:
            while self.epoch < self.cfg.epochs:
                yield self.train_epoch()
            return
        while self.kimg < self.cfg.kimg:
            yield self.train_to_kimg(min(self.cfg.kimg, self.kimg + len(self.train_set) / 1000))

    # ---- sampling and evaluation -----------------------------------------------------------------

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n occupancy-probability volumes (n, R, R, R) on the CPU from the sampling generator
        (G's moving average when there is one), in fp32 as `voxgan-generate` makes them, so that
        exported samples are the scored ones; see `generate`."""
        return generate(self.sampler, self.cfg, n, seed)

    @torch.no_grad()
    def d_mean(self, volumes: torch.Tensor, chunk: int = 64) -> float:
        """The trained D's mean output (probability of "real") on 0/1 volumes, as D sees them in
        training: batch statistics of each chunk, which holds one kind of volume as training
        batches do. Eval mode would use running statistics that mix real and fake batches and
        can call every real shape fake. A copy of D runs, so no running statistic moves."""
        probe = copy.deepcopy(self.D).train()
        total = 0.0
        for start in range(0, len(volumes), chunk):
            batch = self._as_input(volumes[start : start + chunk].to(self.device))
            with self._autocast():
                total += probe.probability(batch).float().sum().item()
        return total / len(volumes)

    def evaluate(self) -> dict[str, float]:
        """All metrics of `voxgan.metrics` between fresh samples (thresholded at 0.5) and the
        held-out real test shapes, the memorisation check against the whole training set, and D's
        mean output on each. Deterministic per eval.seed."""
        ev = self.cfg.eval
        real_test = torch.from_numpy(evenly_spaced(self.data.test, ev.max_real))
        real_train = torch.from_numpy(evenly_spaced(self.data.train, ev.n_samples))
        fake = self.sample(ev.n_samples, ev.seed) > metrics.THRESHOLD
        fake_heldout = self.sample(len(real_test), ev.seed + 1) > metrics.THRESHOLD
        train = self.train_set.view(torch.bool)  # the copy already on the device, not another one
        if self._copy_reference is None:  # a property of the data: computed once per run
            self._copy_reference = metrics.copy_share_within(train, device=self.device)
        scores = sample_scores(fake, fake_heldout, real_test, real_train, train, self._copy_reference,
                                       c2st_epochs=ev.c2st_epochs, seed=ev.seed, device=self.device)
        scores["d_real"] = self.d_mean(real_test)
        scores["d_fake"] = self.d_mean(fake)
        if ev.probe:
            scores.update(self.probe())
        return {key: float(value) for key, value in scores.items()}

    def degeneracy(self) -> str | None:
        """Why the generator's samples are degenerate (`voxgan.degeneracy`): the evaluation's own
        samples (the same eval seed), or None when they are not."""
        return degenerate_reason(self.sample(self.cfg.eval.n_samples, self.cfg.eval.seed) > metrics.THRESHOLD)

    def probe(self) -> dict[str, float]:
        """probe_acc: D's features classify the labelled test shapes (voxgan.probe, with the
        cheaper cross-validation of EVAL_C_GRID and EVAL_FOLDS), and the seconds it took."""
        result = probe_discriminator(self.D, self.data.train, self.data.train_labels, self.data.test,
                                     self.data.test_labels, self.device, self.cfg.eval.seed,
                                     c_grid=EVAL_C_GRID, folds=EVAL_FOLDS)
        return {"probe_acc": result.accuracy, "probe_s": result.seconds}

    # ---- checkpoints -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly; only tensors and plain values, so that
        `torch.load(weights_only=True)` can open it without running code."""
        return {
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "shapes_seen": self.shapes_seen,
            "order": self._order,
            "cursor": self._cursor,
            "generator": self.G.state_dict(),
            "generator_ema": None if self.G_ema is None else self.G_ema.state_dict(),
            "discriminator": self.D.state_dict(),
            "g_optimizer": self.g_opt.state_dict(),
            "d_optimizer": self.d_opt.state_dict(),
            "rng": self.rng.get_state(),
            "rng_device": self.device.type,
            "last_d_acc": self._last_d_acc,
            "history": self.history,
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (`voxgan.checkpoint`) to continue from."""
        return write_checkpoint(self.state(), path)

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from `state` under this trainer's config: the schedule's settings at the
        state's shapes seen, over the optimisers' stored ones (the same, unless the config
        switched settings there: `Config.switched`)."""
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.g_opt.load_state_dict(state["g_optimizer"])
        self.d_opt.load_state_dict(state["d_optimizer"])
        self.shapes_seen = state["shapes_seen"]
        self.G_ema = None if state["generator_ema"] is None else WarmupEMA(self.G, max(self.now.ema_decay, 1e-9))
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["generator_ema"])
        self._enter_schedule()
        if state["rng_device"] == self.device.type:
            self.rng.set_state(state["rng"])
        self.epoch = state["epoch"]
        self._order = state["order"].to(self.device)
        self._cursor = state["cursor"]
        self.history = list(state["history"])
        self._last_d_acc = state["last_d_acc"]

    @classmethod
    def resume(cls, path: str | Path, overrides: list[str] | None = None, data: VoxelDataset | None = None,
               device: torch.device | None = None, switch: dict[str, float] | None = None) -> Trainer:
        """Rebuild the run a checkpoint came from and continue where it stopped. `overrides`
        (`key=value`) may change what does not alter the networks, such as `epochs` or `device`;
        `switch` changes schedulable settings from the checkpoint's kimg on, as schedule entries
        (`Config.switched`), so the continued run's config still replays it from scratch."""
        state = read_checkpoint(path)
        cfg = Config.from_dict(apply_overrides(state["config"], overrides or []))
        if switch:
            cfg = cfg.switched(state["shapes_seen"], switch)
        trainer = cls(cfg, data, device)
        try:
            trainer.load_state(state)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: does not fit the config it is resumed with ({exc})") from None
        return trainer
