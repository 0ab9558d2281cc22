"""Schedules: settings that change during a run, switched at a known iteration, replayed exactly.

A run continued from a checkpoint under switched settings (`Trainer.resume(..., switch=...)`, how
population-based training continues a copied member) records the switch as schedule entries; the
same config trained from scratch must reach the same weights, bit for bit, on the same CPU.
"""

import pytest
import torch

from conftest import tiny_config as tiny
from voxgan.config import Config
from voxgan.errors import ConfigError
from voxgan.trainer import Trainer


def same_state(a: Trainer, b: Trainer) -> bool:
    """Both networks, G's average and both optimisers' moments are equal, bit for bit."""
    pairs = [(a.G.state_dict(), b.G.state_dict()), (a.D.state_dict(), b.D.state_dict())]
    if a.G_ema is not None or b.G_ema is not None:
        pairs.append((a.G_ema.state_dict(), b.G_ema.state_dict()))
    tensors = [(x, y) for one, two in pairs for x, y in zip(one.values(), two.values())]
    for opt_a, opt_b in ((a.g_opt, b.g_opt), (a.d_opt, b.d_opt)):
        for state_a, state_b in zip(opt_a.state.values(), opt_b.state.values()):
            tensors += [(state_a[k], state_b[k]) for k in state_a]
    return all(torch.equal(x, y) for x, y in tensors) and a.shapes_seen == b.shapes_seen


def test_a_hand_written_schedule_switches_at_the_first_iteration_from_its_kimg(tiny_data):
    """'instance noise 0.2 until 0.5 kimg, then 0.1' is one schedule entry; batches of 16 reach
    0.5 kimg after 32 iterations (512 shapes), so the 33rd iteration is the first at 0.1."""
    cfg = tiny(batch_size=16, instance_noise=0.2, schedule=[{"kimg": 0.5, "key": "instance_noise", "value": 0.1}])
    trainer = Trainer(cfg, tiny_data)
    trainer.train_to_kimg(0.5)
    assert trainer.shapes_seen == 512 and trainer.noise_std() == 0.2
    trainer.train_to_kimg(0.52)
    assert trainer.noise_std() == 0.1 and trainer.now.instance_noise == 0.1
    assert trainer.cfg.instance_noise == 0.2  # the config as given, schedule and all, is what checkpoints keep


def test_a_learning_rate_switch_keeps_the_optimisers_moments(tmp_path, tiny_data):
    cfg = tiny(schedule=[{"kimg": 0.3, "key": "generator.lr", "value": 1e-4},
                         {"kimg": 0.3, "key": "discriminator.beta1", "value": 0.8}])
    trainer = Trainer(cfg, tiny_data)
    trainer.train_to_kimg(0.3)
    steps = [s["step"].item() for s in trainer.g_opt.state.values()]
    trainer.train_to_kimg(0.4)
    assert trainer.g_opt.param_groups[0]["lr"] == 1e-4
    assert trainer.d_opt.param_groups[0]["betas"] == (0.8, cfg.discriminator.beta2)
    assert all(s["step"].item() > before for s, before in zip(trainer.g_opt.state.values(), steps))
    trainer.save(tmp_path / "ck.pt")
    assert Trainer.resume(tmp_path / "ck.pt", data=tiny_data).g_opt.param_groups[0]["lr"] == 1e-4


@pytest.mark.parametrize("switch", [
    {"generator.lr": 4e-3, "instance_noise": 0.15, "discriminator.lr": 5e-4},
    {"ema_decay": 0.9},  # the average starts from G at the switch, in the run and in its replay
])
def test_a_run_switched_at_a_checkpoint_replays_exactly_from_scratch(tmp_path, tiny_data, switch):
    """Train to 0.4 kimg, continue from the checkpoint with `switch`, train to 0.8: the continued
    run's config (its schedule now holds the switch) trained from scratch ends at the same state."""
    first = Trainer(tiny(instance_noise=0.05), tiny_data)
    first.train_to_kimg(0.4)
    first.save(tmp_path / "ck.pt")
    continued = Trainer.resume(tmp_path / "ck.pt", data=tiny_data, switch=switch)
    assert [(e.key, e.value) for e in continued.cfg.schedule] == list(switch.items())
    assert {e.kimg for e in continued.cfg.schedule} == {first.shapes_seen / 1000}
    continued.train_to_kimg(0.8)

    replay = Trainer(Config.from_dict(continued.cfg.to_dict()), tiny_data)
    replay.train_to_kimg(0.8)  # one stretch: the switch falls inside it
    assert same_state(replay, continued)
    assert replay.now == continued.now


def test_a_copy_without_a_switch_steps_as_its_source_would(tmp_path, tiny_data):
    """A checkpoint continued under its own settings (a switch to the values in effect adds no
    entry) takes the very step its source takes next."""
    source = Trainer(tiny(ema_decay=0.9), tiny_data)
    source.train_to_kimg(0.4)
    source.save(tmp_path / "ck.pt")
    copy = Trainer.resume(tmp_path / "ck.pt", data=tiny_data, switch={"ema_decay": 0.9, "generator.lr": source.cfg.generator.lr})
    assert copy.cfg.schedule == [] and same_state(copy, source)
    assert torch.equal(copy._order, source._order) and copy._cursor == source._cursor
    assert torch.equal(copy.rng.get_state(), source.rng.get_state())
    source.train_to_kimg(0.45)
    copy.train_to_kimg(0.45)
    assert same_state(copy, source)


@pytest.mark.parametrize("schedule, message", [
    ([{"kimg": 2, "key": "instance_noise", "value": 0.1}, {"kimg": 1, "key": "instance_noise", "value": 0.2}],
     "kimg order"),
    ([{"kimg": 1, "key": "ema_decay", "value": 1.5}], "schedule entry at 1 kimg (ema_decay=1.5)"),
    ([{"kimg": 1, "key": "generator.width", "value": 8}], "schedule.0.key"),
    ([{"kimg": 0, "key": "instance_noise", "value": 0.1}], "schedule.0.kimg"),
])
def test_a_bad_schedule_is_refused_with_the_entry_named(schedule, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        tiny(schedule=schedule)
