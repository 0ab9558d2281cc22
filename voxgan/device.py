"""Where a run computes, and in what precision."""

from __future__ import annotations

import torch

from voxgan.config import Config


def pick_device(name: str) -> torch.device:
    """`auto` takes CUDA when there is one; asking for CUDA without one is refused by the caller."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast precision of a run (None: fp32): bf16 when asked, or on CUDA under `auto`."""
    if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None
