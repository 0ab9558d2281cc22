"""The networks at the tutorial preset are exactly SEED-SPEC's tables; other sizes come from the same code."""

import pytest
import torch
from torch import nn

from voxgan.config import Config, preset
from voxgan.models import ConvTranspose3dToOne, Discriminator, Generator


def conv_rows(net: nn.Module) -> list[tuple]:
    """(op, filters, kernel, stride, padding, batch norm, activation) for each layer block."""
    rows = []
    for blk in net.layers:
        conv = blk[0]
        bn = any(isinstance(m, nn.BatchNorm3d) for m in blk)
        act = type(blk[-1]).__name__ if len(blk) > 1 and not isinstance(blk[-1], nn.BatchNorm3d) else None
        if isinstance(blk[-1], nn.LeakyReLU):
            act = f"LeakyReLU({blk[-1].negative_slope})"
        op = next(kind for kind in (nn.ConvTranspose3d, nn.Conv3d) if isinstance(conv, kind)).__name__
        rows.append((op, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0], bn, act))
    return rows


def test_tutorial_generator_is_the_seed_spec_table():
    G = Generator(preset("tutorial"))
    assert conv_rows(G) == [
        ("ConvTranspose3d", 512, 4, 1, 0, True, "ReLU"),  # valid: 1^3 -> 4^3
        ("ConvTranspose3d", 256, 4, 2, 1, True, "ReLU"),  # same
        ("ConvTranspose3d", 128, 4, 2, 1, True, "ReLU"),
        ("ConvTranspose3d", 64, 4, 2, 1, True, "ReLU"),
        ("ConvTranspose3d", 1, 4, 2, 1, False, "Sigmoid"),
    ]
    shapes, x = [], torch.randn(2, 200)
    x = x.view(2, 200, 1, 1, 1)
    shapes.append(x.shape[2])
    for blk in G.layers:
        x = blk(x)
        shapes.append(x.shape[2])
    assert shapes == [1, 4, 8, 16, 32, 64]
    assert x.shape == (2, 1, 64, 64, 64) and 0 <= x.min() and x.max() <= 1


def test_tutorial_discriminator_is_the_seed_spec_table():
    D = Discriminator(preset("tutorial"))
    rows = conv_rows(D)
    assert rows[:4] == [
        ("Conv3d", 64, 4, 2, 1, True, "LeakyReLU(0.2)"),
        ("Conv3d", 128, 4, 2, 1, True, "LeakyReLU(0.2)"),
        ("Conv3d", 256, 4, 2, 1, True, "LeakyReLU(0.2)"),
        ("Conv3d", 512, 4, 2, 1, True, "LeakyReLU(0.2)"),
    ]
    assert rows[4] == ("Conv3d", 1, 4, 1, 0, False, None)  # valid: 4^3 -> 1^3; its sigmoid is D.output_activation
    assert isinstance(D.output_activation, nn.Sigmoid)
    x, shapes = torch.rand(2, 1, 64, 64, 64), [64]
    for blk in D.layers:
        x = blk(x)
        shapes.append(x.shape[2])
    assert shapes == [64, 32, 16, 8, 4, 1]
    p = D.probability(torch.rand(2, 1, 64, 64, 64))
    assert p.shape == (2,) and ((0 <= p) & (p <= 1)).all()
    assert not any(isinstance(m, (nn.MaxPool3d, nn.AvgPool3d, nn.Linear)) for m in D.modules())


@pytest.mark.parametrize("resolution", [16, 32, 128])
def test_other_resolutions_round_trip(resolution):
    cfg = Config.from_dict({"data": {"resolution": resolution}, "generator": {"width": 4}, "discriminator": {"width": 4}})
    G, D = Generator(cfg), Discriminator(cfg)
    out = G(torch.randn(2, cfg.latent_size))
    assert out.shape == (2, 1, resolution, resolution, resolution)
    assert D(out).shape == (2,)
    n_stride2 = sum(1 for m in G.modules() if isinstance(m, nn.ConvTranspose3d) and m.stride[0] == 2)
    assert 4 * 2**n_stride2 == resolution


def test_depth_width_activation_and_batch_norm_come_from_the_config():
    cfg = Config.from_dict({
        "data": {"resolution": 16},
        "generator": {"width": 8, "extra_depth": 2, "activation": "elu", "batch_norm": False},
        "discriminator": {"width": 6, "extra_depth": 1, "activation": "tanh"},
    })
    G, D = Generator(cfg), Discriminator(cfg)
    assert len(G.layers) == 3 + 2 and len(D.layers) == 3 + 1
    assert [blk[0].out_channels for blk in G.layers] == [16, 16, 16, 8, 1]
    assert not any(isinstance(m, nn.BatchNorm3d) for m in G.modules())
    assert sum(isinstance(m, nn.ELU) for m in G.modules()) == 4
    assert sum(isinstance(m, nn.Tanh) for m in D.modules()) == 3
    assert G(torch.randn(3, 200)).shape == (3, 1, 16, 16, 16)


def test_resize_generator_doubles_by_nearest_upsampling_then_a_3x3x3_convolution():
    """With a centre-tap output kernel the last layer copies each voxel of the 8^3 grid to its
    2x2x2 block: no overlapping kernels, so no checkerboard; G's occupancy start sets that
    convolution's bias."""
    cfg = Config.from_dict({"data": {"resolution": 16}, "generator": {"width": 4}, "latent_size": 8,
                            "g_upsample": "resize"})
    G = Generator(cfg)
    assert [type(m).__name__ for m in G.modules() if isinstance(m, (nn.ConvTranspose3d, nn.Upsample))] == \
        ["ConvTranspose3d", "Upsample", "Upsample"]  # the 1^3 -> 4^3 projection, then two doublings
    up, out = G.layers[-1][0]
    with torch.no_grad():
        out.weight.zero_()
        out.weight[0, :, 1, 1, 1] = 1.0
        out.bias.fill_(-2.0)
    hidden = torch.rand(2, 4, 8, 8, 8)
    logits = torch.logit(G.layers[-1](hidden))
    expected = hidden.sum(1, keepdim=True).repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4) - 2.0
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    G.start_at_occupancy(0.04)
    assert out.bias.item() == pytest.approx(torch.logit(torch.tensor(0.04)).item(), abs=1e-5)


def test_g_output_layer_is_the_transposed_convolution_computed_by_aten():
    """G's output layer (ATen's forward kernel instead of oneDNN's, for speed on CPU) computes
    what nn.ConvTranspose3d computes with the same weights, forward and backward, keeps its
    state-dict keys, runs ATen's kernel, and leaves oneDNN's switch as it found it."""
    G = Generator(Config.from_dict({"data": {"resolution": 16}, "generator": {"width": 8}, "latent_size": 8}))
    out = G.layers[-1][0]
    assert isinstance(out, ConvTranspose3dToOne) and sorted(out.state_dict()) == ["bias", "weight"]
    assert [type(m) for m in G.modules() if isinstance(m, nn.ConvTranspose3d)].count(ConvTranspose3dToOne) == 1
    plain = nn.ConvTranspose3d(out.in_channels, 1, 4, 2, 1)
    plain.load_state_dict(out.state_dict())
    x = torch.randn(3, out.in_channels, 8, 8, 8, requires_grad=True)
    x_plain = x.detach().clone().requires_grad_(True)
    switch = torch.backends.mkldnn.enabled
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        y = out(x)
    assert torch.backends.mkldnn.enabled == switch
    assert "aten::slow_conv_transpose3d" in {event.key for event in prof.key_averages()}
    y_plain = plain(x_plain)
    torch.testing.assert_close(y, y_plain, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    (y_plain * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_plain.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.weight.grad, plain.weight.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.bias.grad, plain.bias.grad, atol=1e-4, rtol=1e-4)
