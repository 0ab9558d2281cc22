"""The checkpoint file: its format marker, writing it atomically, reading it safely, and the
sampling generator it holds.

A checkpoint holds only tensors and plain values (`Trainer.state`), so that
`torch.load(weights_only=True)` opens it without running code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from voxgan.config import Config
from voxgan.device import pick_device
from voxgan.errors import CheckpointError
from voxgan.models import MEMORY_FORMAT, Discriminator, Generator

CHECKPOINT_FORMAT = "voxgan-checkpoint-v1"


def write_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    tmp.replace(path)
    return path


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


def load_generator(path: str | Path, device: str = "auto") -> tuple[Generator, Config]:
    """The sampling generator of a checkpoint (G's moving average when the run kept one) and its
    config, without loading any data."""
    state = read_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    G = Generator(cfg)
    if state.get("generator_ema") is not None:
        prefix = "module."
        G.load_state_dict({k[len(prefix):]: v for k, v in state["generator_ema"].items() if k.startswith(prefix)})
    else:
        G.load_state_dict(state["generator"])
    return G.to(pick_device(device), memory_format=MEMORY_FORMAT), cfg


def load_discriminator(path: str | Path, device: str = "auto") -> tuple[Discriminator, Config]:
    """The trained discriminator of a checkpoint and its config (for `voxgan-probe`)."""
    state = read_checkpoint(path)
    if state.get("discriminator") is None:
        raise CheckpointError(f"{path}: holds no discriminator (only a generator); the probe needs the "
                              f"checkpoint of a training run")
    cfg = Config.from_dict(state["config"])
    D = Discriminator(cfg)
    D.load_state_dict(state["discriminator"])
    return D.to(pick_device(device), memory_format=MEMORY_FORMAT), cfg
