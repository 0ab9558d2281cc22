"""GAN losses computed from the discriminator's logits, and the penalties that stabilise them.

Working from logits instead of sigmoid outputs keeps binary cross-entropy finite when D is
confident (log(sigmoid(x)) is evaluated as -softplus(-x)); this is the stable form of the
tutorial's loss. LSGAN regresses D's raw output (Mao et al. 2017), never a sigmoid of it, which
would saturate; `wgan` is the Wasserstein critic loss, meant to be used with the gradient penalty
(Gulrajani et al. 2017); `r1_penalty` is Mescheder et al. (2018)'s penalty on real data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F



def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float) -> torch.Tensor:
    """D's loss: the mean of its loss on the real batch and on the fake batch (for `wgan`, the
    critic's E[D(fake)] - E[D(real)], which the gradient penalty keeps bounded)."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "wgan":
        return fake_logits.mean() - real_logits.mean()
    if kind == "bce":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    elif kind == "lsgan":
        real = (real_logits - real_label).square().mean()
        fake = fake_logits.square().mean()
    elif kind == "hinge":
        real = F.relu(1.0 - real_logits).mean()
        fake = F.relu(1.0 + fake_logits).mean()
    else:
        raise ValueError(f"unknown loss {kind!r}")
    return 0.5 * (real + fake)


def generator_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss through the frozen D with "real" targets (the tutorial's stacked model); bce is
    the non-saturating form."""
    fake_logits = fake_logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "lsgan":
        return (fake_logits - 1.0).square().mean()
    if kind in ("hinge", "wgan"):
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")


def _input_gradient_norms(critic: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """|| dD(x)/dx ||_2 per sample, with a graph so that the penalty itself can be trained on."""
    inputs = inputs.detach().float().requires_grad_(True)
    outputs = critic(inputs).float()
    (grads,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grads.flatten(1).norm(dim=1)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """WGAN-GP's E[(||grad D(x_hat)|| - 1)^2] at random points x_hat between real and fake pairs
    (unweighted: the caller multiplies by lambda)."""
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device)
    between = eps * real.detach().float() + (1 - eps) * fake.detach().float()
    return (_input_gradient_norms(critic, between) - 1.0).square().mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1: E[||grad D(x)||^2] on real shapes (unweighted: the caller multiplies by gamma / 2)."""
    return _input_gradient_norms(critic, real).square().mean()
