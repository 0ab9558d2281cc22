"""Where a run computes, and in what precision."""

from __future__ import annotations

import torch

from voxgan.config import Config
from voxgan.errors import ConfigError


def pick_device(name: str) -> torch.device:
    """`auto` takes CUDA when there is one; asking for CUDA without one is refused by the caller."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast precision of a run (None: fp32): bf16 when asked, or under `auto` on a GPU
    with fast bf16 (compute capability 8.0 and later); fp32 on other GPUs, where bf16 would be
    emulated, and fp16 would need a gradient scaler the loop does not have."""
    fast_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if cfg.precision == "bf16" and device.type == "cuda" and not fast_bf16:
        raise ConfigError(f"precision=bf16: {torch.cuda.get_device_name(device)} has no fast bf16; use precision=fp32")
    if cfg.precision == "bf16" or (cfg.precision == "auto" and fast_bf16):
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else str(dtype).removeprefix("torch.").replace("bfloat16", "bf16")
