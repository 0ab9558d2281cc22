"""Drawing shapes from a generator: its latent vectors and its samples, a pure function of the
weights and a seed, the same in training, evaluation and `voxgan-generate`."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from voxgan.config import Config
from voxgan.models import Generator


def sample_latent(cfg: Config, n: int, generator: torch.Generator) -> torch.Tensor:
    """z as the config says: N(0, latent_std) (tutorial) or U(0, 1) (paper)."""
    shape = (n, cfg.latent_size)
    if cfg.latent_dist == "uniform":
        return torch.rand(shape, generator=generator, device=generator.device)
    return torch.randn(shape, generator=generator, device=generator.device) * cfg.latent_std


def generate(G: Generator, cfg: Config, n: int, seed: int, amp_dtype: torch.dtype | None = None, chunk: int = 64) -> torch.Tensor:
    """n occupancy-probability volumes (n, R, R, R) on the CPU, a pure function of the weights
    and seed. G runs in eval mode (batch norm uses its running statistics), as at test time."""
    return torch.cat(list(generate_chunks(G, cfg, n, seed, amp_dtype, chunk)))


@torch.no_grad()
def generate_chunks(G: Generator, cfg: Config, n: int, seed: int, amp_dtype: torch.dtype | None = None,
                    chunk: int = 64) -> Iterator[torch.Tensor]:
    """`generate`'s volumes `chunk` at a time, so that many samples never need to fit in memory
    at once; concatenated they are exactly `generate`'s."""
    device = next(G.parameters()).device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    was_training = G.training
    G.eval()
    try:
        for start in range(0, n, chunk):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                yield G(sample_latent(cfg, min(chunk, n - start), gen)).float().squeeze(1).cpu()
    finally:
        G.train(was_training)
