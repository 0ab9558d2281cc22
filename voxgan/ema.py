"""G's exponential moving average, the generator that samples, evaluates and exports.

After the n-th G step, ema <- b ema + (1 - b) w with b = min(decay, (1 + n) / (10 + n))
(TensorFlow's num_updates warm-up): a short run or an early evaluation then sees an average of
recent weights, not one still anchored at the initial ones (with decay 0.999 that anchor would
dominate for thousands of steps). Buffers (batch norm's running statistics) are copied from G.

It is torch's `AveragedModel`, so checkpoints keep its state (`module.*` and `n_averaged`), with
the step count also kept on the host: b is computed there, in float32 as AveragedModel's own
arithmetic would, and each step is one `lerp_` per parameter with a plain number. No device
tensor is read and no host tensor is copied to the device, so a G step on CUDA never waits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_keep(decay: float, n: int) -> float:
    """b after n earlier updates, rounded to float32 as a float32 tensor computes it."""
    keep = min(np.float32(1 + n) / np.float32(10 + n), np.float32(decay))
    return float(keep)


class WarmupEMA(AveragedModel):
    def __init__(self, model: nn.Module, decay: float):
        super().__init__(model)  # n_averaged stays on the CPU: it is only ever written
        self.decay = decay
        self.steps = 0
        """Updates so far: n_averaged, held as a host integer."""

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        averaged, current = list(self.module.parameters()), [p.detach() for p in model.parameters()]
        if self.steps == 0:
            for a, c in zip(averaged, current):
                a.copy_(c)
        else:
            weight = float(np.float32(1) - np.float32(warmup_keep(self.decay, self.steps)))
            for a, c in zip(averaged, current):
                a.lerp_(c, weight)
        for b_average, b in zip(self.module.buffers(), model.buffers()):
            b_average.copy_(b)
        self.steps += 1
        self.n_averaged.fill_(self.steps)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.steps = int(self.n_averaged)
        return result
