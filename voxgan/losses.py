"""GAN losses computed from the discriminator's logits.

Working from logits instead of sigmoid outputs keeps binary cross-entropy finite when D is
confident (log(sigmoid(x)) is evaluated as -softplus(-x)); this is the stable form of the
tutorial's loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float) -> torch.Tensor:
    """D's loss: the mean of its loss on the real batch and on the fake batch."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "bce":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    elif kind == "lsgan":
        real = (torch.sigmoid(real_logits) - real_label).square().mean()
        fake = torch.sigmoid(fake_logits).square().mean()
    elif kind == "hinge":
        real = F.relu(1.0 - real_logits).mean()
        fake = F.relu(1.0 + fake_logits).mean()
    else:
        raise ValueError(f"unknown loss {kind!r}")
    return 0.5 * (real + fake)


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss through the frozen D with "real" targets (the tutorial's stacked model)."""
    fake_logits = fake_logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "lsgan":
        return (torch.sigmoid(fake_logits) - 1.0).square().mean()
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")
