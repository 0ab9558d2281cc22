"""The GAN stabilisers, each against a known answer: the gradient penalty of a linear critic, R1 of
a quadratic one, spectral norms near 1, the EMA formula, G's start at the data's occupancy,
instance noise of the asked size, D steps per G step, budgets in shapes seen."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import tiny_config as tiny
from voxgan.config import Config
from voxgan.errors import ConfigError
from voxgan.losses import discriminator_loss, generator_loss, gradient_penalty, r1_penalty
from voxgan.models import Discriminator, Generator
from voxgan.checkpoint import load_generator
from voxgan.trainer import Trainer

def test_gradient_penalty_of_a_linear_critic_is_its_closed_form():
    """D(x) = <w, x> has gradient w everywhere, so the penalty is (||w|| - 1)^2 at any point."""
    w = torch.tensor([3.0, 4.0, 0.0, 12.0])  # ||w|| = 13

    def critic(x):
        return (x.flatten(1) * w).sum(dim=1)

    real, fake = torch.randn(8, 4), torch.randn(8, 4)
    penalty = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    assert penalty.item() == pytest.approx((13 - 1) ** 2)


def test_r1_of_a_quadratic_critic_matches_hand_computed_gradients():
    """D(x) = sum(c * x^2) has gradient 2 c x: R1 = mean over shapes of ||2 c x||^2."""
    c = 0.75
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
    expected = np.mean([((2 * c * row) ** 2).sum() for row in x.numpy()])
    assert r1_penalty(lambda v: (c * v.square()).sum(dim=1), x).item() == pytest.approx(expected)


def test_penalties_train_the_critic_they_are_computed_on():
    """The penalties keep their graph: their gradient reaches every weight of D (not the biases
    of the output layer, which do not change dD/dx)."""
    D = Discriminator(tiny(discriminator={"width": 4, "norm": "none"}))
    real = torch.rand(2, 1, 16, 16, 16)
    (gradient_penalty(D, real, torch.rand_like(real), torch.Generator()) + r1_penalty(D, real)).backward()
    weights = [p for p in D.parameters() if p.dim() > 1]
    assert len(weights) == 3 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_lsgan_is_least_squares_on_the_raw_output():
    """At a logit of -5 G's LSGAN gradient is 2 * (-5 - 1) = -12: it does not saturate."""
    logit = torch.tensor([-5.0], requires_grad=True)
    generator_loss("lsgan", logit).backward()
    assert logit.grad.item() == pytest.approx(-12.0)
    assert discriminator_loss("lsgan", torch.tensor([1.0]), torch.tensor([0.0]), 1.0).item() == 0.0


def test_wgan_critic_loss_is_the_difference_of_means():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([-1.0, 0.0])
    assert discriminator_loss("wgan", real, fake, 1.0).item() == pytest.approx(-0.5 - 3.0)
    assert generator_loss("wgan", fake).item() == pytest.approx(0.5)


def test_spectral_norm_keeps_each_layers_largest_singular_value_near_one():
    D = Discriminator(tiny(discriminator={"width": 4, "spectral_norm": True}))
    D.train()
    with torch.no_grad():
        for _ in range(30):  # each forward in train mode is one power iteration
            D(torch.rand(2, 1, 16, 16, 16))
    convs = [m for m in D.modules() if isinstance(m, nn.Conv3d)]
    assert len(convs) == 3 and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    assert convs[-1].bias is not None  # the output layer keeps its bias (the logit's offset)
    for layer in convs:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("norm, module", [("batch", nn.BatchNorm3d), ("instance", nn.InstanceNorm3d), ("layer", nn.GroupNorm), ("none", None)])
def test_each_normalisation_is_built_where_asked(norm, module):
    cfg = tiny(generator={"width": 8, "norm": norm}, discriminator={"width": 8, "norm": norm})
    for net in (Generator(cfg), Discriminator(cfg)):
        kinds = {type(m) for m in net.modules() if isinstance(m, (nn.BatchNorm3d, nn.InstanceNorm3d, nn.GroupNorm))}
        assert kinds == ({module} if module else set())
        # a bias only where no normalisation's shift follows (and always on the output layer)
        hidden = [m for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))][:-1]
        assert all((m.bias is None) == (norm != "none") for m in hidden)


def test_gradient_penalty_refuses_a_batch_normalised_critic():
    with pytest.raises(ConfigError, match="gradient_penalty needs discriminator.norm"):
        tiny(gradient_penalty=10.0)
    assert tiny(gradient_penalty=10.0, discriminator={"width": 8, "norm": "layer"}).gradient_penalty == 10.0


def test_configs_that_said_batch_norm_still_load():
    cfg = Config.from_dict({"generator": {"batch_norm": False}, "discriminator": {"batch_norm": True}})
    assert (cfg.generator.norm, cfg.discriminator.norm) == ("none", "batch")


def test_ema_weights_follow_the_formula(tiny_data):
    """ema_1 = w_1, ema_t = b_t * ema_{t-1} + (1 - b_t) * w_t after G step t, with the warm-up
    b_t = min(decay, t / (9 + t)): 0.1818, 0.25, then the decay 0.3 from step 4 on."""
    decay = 0.3
    trainer = Trainer(tiny(ema_decay=decay, generator={"width": 8, "lr": 1e-2}), tiny_data)
    expected = None
    for t, b in enumerate([None, 2 / 11, 3 / 12, 0.3, 0.3], start=1):
        trainer._train(1)
        weights = [p.detach().clone() for p in trainer.G.parameters()]
        expected = weights if t == 1 else [b * e + (1 - b) * w for e, w in zip(expected, weights)]
    averaged = list(trainer.sampler.parameters())
    assert all(torch.allclose(a, e, atol=1e-6) for a, e in zip(averaged, expected))
    assert not all(torch.equal(a, w) for a, w in zip(averaged, trainer.G.parameters()))
    # batch-norm statistics are G's own (the average is of weights)
    assert all(torch.equal(a, b) for a, b in zip(trainer.sampler.buffers(), trainer.G.buffers()))


def test_ema_is_what_samples_checkpoints_and_exports_use(tmp_path, tiny_data):
    trainer = Trainer(tiny(ema_decay=0.9), tiny_data)
    trainer.train_epoch()
    with torch.no_grad():
        z = trainer.sample_latent(4)
        from_ema = trainer.sampler.eval()(z)
    assert not torch.equal(from_ema, trainer.G.eval()(z))
    trainer.save(tmp_path / "ck.pt")
    exported, _ = load_generator(tmp_path / "ck.pt", device="cpu")
    with torch.no_grad():
        assert torch.equal(exported.eval()(z), from_ema)
    resumed = Trainer.resume(tmp_path / "ck.pt", data=tiny_data)
    assert all(torch.equal(a, b) for a, b in zip(resumed.sampler.state_dict().values(), trainer.sampler.state_dict().values()))


def test_generator_starts_at_the_datas_occupancy(tiny_data):
    occupancy = float(tiny_data.train.mean())
    started = Trainer(tiny(g_output_init="occupancy"), tiny_data).sample(16, 0)
    plain = Trainer(tiny(), tiny_data).sample(16, 0)
    assert started.mean().item() == pytest.approx(occupancy, rel=0.25)
    assert plain.mean().item() == pytest.approx(0.5, abs=0.05)


def test_instance_noise_has_the_asked_standard_deviation(tiny_data):
    trainer = Trainer(tiny(instance_noise=0.2), tiny_data)
    volumes = torch.zeros(8, 1, 16, 16, 16)
    assert (trainer._noisy(volumes) - volumes).std().item() == pytest.approx(0.2, rel=0.03)
    assert Trainer(tiny(), tiny_data)._noisy(volumes) is volumes


def test_instance_noise_fades_linearly_to_zero(tiny_data):
    trainer = Trainer(tiny(instance_noise=0.2, instance_noise_kimg=0.1), tiny_data)
    assert trainer.noise_std() == 0.2
    trainer.train_to_kimg(0.048)  # three batches of 16
    assert trainer.noise_std() == pytest.approx(0.2 * (1 - 0.048 / 0.1))
    trainer.train_to_kimg(0.112)
    volumes = torch.zeros(2, 1, 16, 16, 16)
    assert trainer.noise_std() == 0.0 and trainer._noisy(volumes) is volumes


def test_d_steps_update_d_that_many_times_per_g_step(tiny_data):
    trainer = Trainer(tiny(d_steps=3), tiny_data)
    trainer._train(2)
    assert trainer.shapes_seen == 2 * 3 * 16
    steps = lambda opt: int(next(iter(opt.state.values()))["step"])  # noqa: E731
    assert (steps(trainer.d_opt), steps(trainer.g_opt)) == (6, 2)


def test_budgets_in_shapes_resume_exactly_mid_pass(tmp_path, tiny_data):
    """Training to a kimg mark stops mid-pass; a checkpoint there continues the same pass."""
    straight = Trainer(tiny(), tiny_data)
    straight.train_to_kimg(0.1)
    straight.train_to_kimg(0.2)
    assert straight.shapes_seen == 208  # whole batches of 16: 7, then 6 more to pass 200
    first = Trainer(tiny(), tiny_data)
    first.train_to_kimg(0.1)
    first.save(tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt", data=tiny_data)
    resumed.train_to_kimg(0.2)
    assert resumed.kimg == straight.kimg == 0.208
    assert resumed.history[-1]["g_loss"] == straight.history[-1]["g_loss"]
    assert all(torch.equal(a, b) for a, b in zip(resumed.G.state_dict().values(), straight.G.state_dict().values()))


def test_d_real_is_read_with_batch_statistics_and_moves_nothing(tiny_data):
    trainer = Trainer(tiny(discriminator={"width": 8, "lr": 2e-3, "beta1": 0.5}), tiny_data)
    for _ in range(3):
        trainer.train_epoch()
    before = copy.deepcopy(trainer.D.state_dict())
    real = torch.from_numpy(tiny_data.test[:16])
    value = trainer.d_mean(real)
    assert all(torch.equal(before[k], v) for k, v in trainer.D.state_dict().items())
    probe = copy.deepcopy(trainer.D).train()
    with torch.no_grad():
        assert value == pytest.approx(probe.probability(real.unsqueeze(1).float()).mean().item(), rel=1e-5)


def test_a_kimg_budget_stops_at_the_same_iteration_however_it_is_cut(tiny_data):
    """A search evaluates every 0.05 kimg; a retrain runs the config's kimg budget in passes of
    the training set. Both end at the same iteration with the same weights."""
    cfg = tiny(kimg=0.15)
    search = Trainer(cfg, tiny_data)
    for mark in (0.05, 0.1, 0.15):
        search.train_to_kimg(mark)
    retrain = Trainer(cfg, tiny_data)
    stretches = list(retrain.train_budget())
    assert len(stretches) == 2 and stretches[0].kimg < 0.1  # a pass of the 72 shapes, then the rest
    assert retrain.shapes_seen == search.shapes_seen == 160
    assert all(torch.equal(a, b) for a, b in zip(retrain.G.state_dict().values(), search.G.state_dict().values()))


def test_the_moving_average_is_torchs_averaged_model_with_the_warm_up_to_the_bit():
    """WarmupEMA keeps its step count on the host (no device read or copy per step); what it
    computes is AveragedModel's update with the warm-up b = min(decay, (1 + n) / (10 + n)), bit for
    bit, and its state loads into either."""
    from torch.optim.swa_utils import AveragedModel

    from voxgan.ema import WarmupEMA

    def warm_up(decay):
        def update(averaged, current, n_averaged):
            keep = torch.clamp((1 + n_averaged) / (10 + n_averaged), max=decay).to(averaged[0].dtype)
            for a, c in zip(averaged, current):
                a.lerp_(c, 1 - keep)
        return update

    torch.manual_seed(0)
    G = Generator(tiny())
    for decay in (0.5, 0.99, 0.999):
        reference, ema = AveragedModel(G, multi_avg_fn=warm_up(decay)), WarmupEMA(G, decay)
        moving = copy.deepcopy(G)
        for _ in range(40):
            with torch.no_grad():
                for p in moving.parameters():
                    p.add_(torch.randn_like(p) * 0.01)
            reference.update_parameters(moving)
            ema.update_parameters(moving)
        expected, got = reference.state_dict(), ema.state_dict()
        assert list(expected) == list(got) and all(torch.equal(expected[k], got[k]) for k in expected)
        resumed = WarmupEMA(G, decay)
        resumed.load_state_dict(got)
        assert resumed.steps == 40
