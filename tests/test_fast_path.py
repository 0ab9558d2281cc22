"""The Trainer's CUDA fast path (bf16 autocast + channels_last_3d) computes what fp32 computes.

Both sides are built from the same state_dict: the Trainer's own networks, in its own memory
format and under its own autocast, against fresh fp32 copies in the default (contiguous) layout
with TF32 off. On the same random inputs the generator's output, the discriminator's logits and
every parameter gradient of a D step and a G step must agree within bf16 tolerance. Skipped
without a CUDA device.
"""

import numpy as np
import pytest
import torch

from voxgan.config import preset
from voxgan.data import VoxelDataset
from voxgan.losses import discriminator_loss, generator_loss
from voxgan.models import Discriminator, Generator
from voxgan.trainer import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the fast path is CUDA-only)"),
]

COSINE_MIN = 0.99
REL_L2_MAX = 5e-2
GRAD_COSINE_MIN = 0.97
GRAD_REL_L2_MAX = 0.25
"""Gradients pass through every layer twice in bf16 (forward and backward) and through batch
norm's backward, which cancels most of the incoming gradient at initialisation: a bf16 autocast
run of this test on a CPU measured D gradients at cosine 0.997 / relative L2 0.08 and G gradients
at 0.988 / 0.156 (outputs and logits: relative L2 0.005-0.015). A layout or dtype bug (wrong
weight order, a lost gradient) gives a cosine near 0, far outside these bounds."""
BATCH = 4


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300))


def rel_l2(fast: torch.Tensor, ref: torch.Tensor) -> float:
    fast, ref = fast.double().flatten(), ref.double().flatten()
    return float((fast - ref).norm() / ref.norm().clamp_min(1e-300))


def assert_close(name: str, fast: torch.Tensor, ref: torch.Tensor, rel_max: float = REL_L2_MAX,
                 cos_min: float = COSINE_MIN) -> None:
    assert fast.shape == ref.shape, f"{name}: shape {tuple(fast.shape)} vs {tuple(ref.shape)}"
    assert torch.isfinite(fast).all(), f"{name}: non-finite values on the fast path"
    c, r = cosine(fast, ref), rel_l2(fast, ref)
    assert c > cos_min and r < rel_max, f"{name}: cosine {c:.5f} (> {cos_min}), relative L2 {r:.4f} (< {rel_max})"


def grads(module: torch.nn.Module) -> torch.Tensor:
    """All parameter gradients of a module, flattened in a fixed (parameter) order."""
    missing = [name for name, p in module.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    return torch.cat([p.grad.float().flatten() for p in module.parameters()])


@pytest.fixture(autouse=True)
def exact_fp32_reference():
    """The reference is true fp32: no TF32 in convolutions or matmuls while a test runs."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def fast_trainer(resolution: int, overrides: list[str]) -> Trainer:
    cfg = preset("tutorial", [f"data.resolution={resolution}", f"batch_size={BATCH}", "device=cuda", *overrides])
    volumes = np.random.default_rng(resolution).random((2 * BATCH, resolution, resolution, resolution)) < 0.1
    return Trainer(cfg, VoxelDataset(train=volumes, test=volumes[:2], name="random"))


def fp32_copies(trainer: Trainer) -> tuple[Generator, Discriminator]:
    G, D = Generator(trainer.cfg), Discriminator(trainer.cfg)
    G.load_state_dict(trainer.G.state_dict())
    D.load_state_dict(trainer.D.state_dict())
    G, D = G.cuda(), D.cuda()
    for p in [*G.parameters(), *D.parameters()]:
        assert p.dtype == torch.float32 and p.is_contiguous()
    return G.train(), D.train()


def test_trainer_takes_the_fast_path_on_cuda():
    trainer = fast_trainer(32, [])
    assert trainer.device.type == "cuda"
    assert trainer.amp_dtype == torch.bfloat16
    assert trainer.memory_format == torch.channels_last_3d
    for module in (trainer.G, trainer.D):
        weights = [p for p in module.parameters() if p.ndim == 5]
        assert weights and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in weights)
        assert all(p.dtype == torch.float32 for p in module.parameters())  # master weights stay fp32
    stats = trainer.train_epoch()
    assert np.isfinite(stats.g_loss) and np.isfinite(stats.d_loss)


@pytest.mark.parametrize("resolution, overrides", [
    (32, []),
    (64, []),
    (32, ["generator.extra_depth=1", "discriminator.extra_depth=1", "discriminator.activation=elu"]),
])
def test_bf16_channels_last_matches_fp32(resolution, overrides):
    trainer = fast_trainer(resolution, overrides)
    G_ref, D_ref = fp32_copies(trainer)
    G_fast, D_fast = trainer.G.train(), trainer.D.train()

    torch.manual_seed(0)
    z = torch.randn(BATCH, trainer.cfg.latent_size, device="cuda") * trainer.cfg.latent_std
    z2 = torch.randn(BATCH, trainer.cfg.latent_size, device="cuda") * trainer.cfg.latent_std
    real_volumes = torch.rand(BATCH, resolution, resolution, resolution, device="cuda") < 0.1

    # The fast path, exactly as Trainer.train_epoch runs it.
    real_fast = trainer._as_input(real_volumes)
    with trainer._autocast():
        fake_fast = G_fast(z)
        real_logits_fast = D_fast(real_fast)
        fake_logits_fast = D_fast(fake_fast.detach())
        d_loss_fast = discriminator_loss("bce", real_logits_fast, fake_logits_fast, 1.0)
    assert fake_fast.dtype == torch.bfloat16, "autocast is not in effect: the comparison would be fp32 against fp32"
    d_loss_fast.backward()
    D_fast.requires_grad_(False)
    with trainer._autocast():
        g_loss_fast = generator_loss("bce", D_fast(G_fast(z2)))
    g_loss_fast.backward()
    D_fast.requires_grad_(True)

    # fp32, contiguous, no autocast.
    real_ref = real_volumes.unsqueeze(1).float()
    fake_ref = G_ref(z)
    real_logits_ref = D_ref(real_ref)
    fake_logits_ref = D_ref(fake_ref.detach())
    discriminator_loss("bce", real_logits_ref, fake_logits_ref, 1.0).backward()
    D_ref.requires_grad_(False)
    generator_loss("bce", D_ref(G_ref(z2))).backward()
    D_ref.requires_grad_(True)

    assert_close("G output", fake_fast.float(), fake_ref)
    assert_close("D logits (real)", real_logits_fast.float(), real_logits_ref)
    assert_close("D logits (fake)", fake_logits_fast.float(), fake_logits_ref)
    assert_close("D gradients", grads(D_fast), grads(D_ref), GRAD_REL_L2_MAX, GRAD_COSINE_MIN)
    assert_close("G gradients", grads(G_fast), grads(G_ref), GRAD_REL_L2_MAX, GRAD_COSINE_MIN)
    # Every network's largest parameter (a conv weight) also on its own.
    for name, fast, ref in (("G", G_fast, G_ref), ("D", D_fast, D_ref)):
        biggest = max(range(len(list(ref.parameters()))), key=lambda i: list(ref.parameters())[i].numel())
        assert_close(f"{name} gradient of its largest weight", list(fast.parameters())[biggest].grad.float(),
                     list(ref.parameters())[biggest].grad, GRAD_REL_L2_MAX, GRAD_COSINE_MIN)


@pytest.mark.parametrize("overrides", [
    [],  # the reference recipe
    ["r1_gamma=1.0", "discriminator.spectral_norm=true", "discriminator.norm=layer", "ema_decay=0.999",
     "instance_noise_kimg=0.2", "g_upsample=resize", "d_steps=2"],  # every stabiliser at once
])
def test_the_reference_and_stabilised_recipes_train_evaluate_and_export_on_cuda(tmp_path, overrides):
    """The real Trainer on CUDA: finite losses and scores, and the samples `voxgan-generate` makes
    from the saved checkpoint are the ones the evaluation scored (both fp32)."""
    from voxgan.checkpoint import load_generator
    from voxgan.sampling import generate

    cfg = preset("reference", ["data.resolution=32", "data.n_shapes=64", "generator.width=16",
                               "discriminator.width=16", "batch_size=16", "eval.n_samples=16", "eval.max_real=8",
                               "eval.c2st_epochs=1", *overrides])
    trainer = Trainer(cfg)
    trainer.train_to_kimg(0.256)
    scores = trainer.evaluate()
    assert np.isfinite(scores["score"]) and 0 <= scores["score"] <= 1
    path = trainer.save(tmp_path / "checkpoint.pt")
    G, saved = load_generator(path, device="cuda")
    assert torch.equal(trainer.sample(8, 7), generate(G, saved, 8, 7))
