"""The 3D-GAN generator and discriminator of Wu et al. (2016), built from a config.

At the `tutorial` preset (64^3, width 64, no extra depth) they are exactly SEED-SPEC's tables:

    G: z (200) -> 512@4^3 -> 256@8^3 -> 128@16^3 -> 64@32^3 -> 1@64^3, ReLU + batch norm, sigmoid out
    D: 1@64^3 -> 64@32^3 -> 128@16^3 -> 256@8^3 -> 512@4^3 -> 1@1^3, LeakyReLU(0.2) + batch norm

Other resolutions add or drop stride-2 layers (one per doubling above 4^3), `width` scales the
channels, and `extra_depth` inserts stride-1 3x3x3 blocks at 4^3, where they are cheapest. With
`g_upsample: resize` each of G's doublings is nearest-neighbour upsampling and a 3x3x3
convolution instead of a stride-2 transposed convolution, whose 4^3 kernels overlap unevenly and
print a checkerboard on the output (Odena et al. 2016). The
discriminator returns logits: the sigmoid of the tables lives in the loss (numerically stable
binary cross-entropy) and in `Discriminator.probability`. Each network's optimiser is built
beside it (`configure_optimizer`), from the same `NetConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from voxgan.config import Config, NetConfig, OptimizerName

KERNEL = 4
BASE = 4  # the coarsest grid: G projects z to 4^3, D reduces 4^3 to one logit
MEMORY_FORMAT = torch.channels_last_3d
"""The networks' memory layout on both devices, in training and in `load_generator`: cuDNN's and
oneDNN's 3D convolutions are faster on it (on CPU 5-11% per kimg for the default study's
networks, torch 2.13), and one layout everywhere keeps samples bit-identical between them."""


def activation(name: str) -> nn.Module:
    """A hidden-layer activation by config name (LeakyReLU uses the tutorial's slope 0.2)."""
    return {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(0.2),
        "elu": nn.ELU,
        "selu": nn.SELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
    }[name]()


def channel_plan(resolution: int, width: int) -> list[int]:
    """Hidden channels from the 4^3 end to the full-resolution end: width * 2^k, halving as the
    grid doubles, so 64^3 with width 64 gives [512, 256, 128, 64]."""
    n_up = int(math.log2(resolution // BASE))
    return [width * 2 ** (n_up - 1 - i) for i in range(n_up)]


def normalisation(name: str, channels: int) -> list[nn.Module]:
    """The hidden layers' normalisation by config name: batch (SEED-SPEC), instance, layer (one
    group spanning channels and space, i.e. layer norm over each shape), or none."""
    if name == "batch":
        return [nn.BatchNorm3d(channels)]
    if name == "instance":
        return [nn.InstanceNorm3d(channels, affine=True)]
    if name == "layer":
        return [nn.GroupNorm(1, channels)]
    return []


def conv(kind: type[nn.Module], c_in: int, c_out: int, kernel: int, stride: int, padding: int, *, bias: bool,
         spectral: bool) -> nn.Module:
    """A (transposed) convolution, spectrally normalised when asked."""
    layer = kind(c_in, c_out, kernel, stride, padding, bias=bias)
    return nn.utils.parametrizations.spectral_norm(layer) if spectral else layer


def hidden(make: Callable[..., nn.Module], c_out: int, net: NetConfig) -> nn.Sequential:
    """`make(bias=..., spectral=...)`, then the network's normalisation and activation: one row of
    SEED-SPEC's tables. No bias where a normalisation's shift follows."""
    layer = make(bias=net.norm == "none", spectral=net.spectral_norm)
    return nn.Sequential(layer, *normalisation(net.norm, c_out), activation(net.activation))


def block(kind: type[nn.Module], c_in: int, c_out: int, kernel: int, stride: int, padding: int, net: NetConfig) -> nn.Sequential:
    """Convolution, optional normalisation, hidden activation."""
    return hidden(partial(conv, kind, c_in, c_out, kernel, stride, padding), c_out, net)


class ConvTranspose3dToOne(nn.ConvTranspose3d):
    """A transposed convolution to one channel (G's output layer) whose forward pass runs
    ATen's own CPU kernel instead of oneDNN's.

    On CPU, oneDNN's forward kernel for one output channel is slow: one thread, 32 channels at
    8^3 to 16^3, batch 32, it took 8.9 ms against ATen's 1.4 ms, and this one layer was a third
    of a small G's training step (`benchmarks/bench.py` section e times forward and backward
    together). The backward pass stays on oneDNN, which is as fast there. The parameters, the
    state dict and the function are those of `nn.ConvTranspose3d`. oneDNN's switch is
    process-wide, so it is turned off only around this call, only on CPU, and only when on."""

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if input.device.type != "cpu" or not torch.backends.mkldnn.enabled:
            return super().forward(input, output_size)
        torch.backends.mkldnn.enabled = False
        try:
            return super().forward(input, output_size)
        finally:
            torch.backends.mkldnn.enabled = True


def doubling(c_in: int, c_out: int, how: str, *, bias: bool, spectral: bool) -> nn.Module:
    """A layer that doubles the grid: SEED-SPEC's 4^3 stride-2 transposed convolution, or
    (`resize`) nearest-neighbour upsampling followed by a 3x3x3 convolution."""
    if how == "transposed":
        kind = ConvTranspose3dToOne if c_out == 1 else nn.ConvTranspose3d
        return conv(kind, c_in, c_out, KERNEL, 2, 1, bias=bias, spectral=spectral)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         conv(nn.Conv3d, c_in, c_out, 3, 1, 1, bias=bias, spectral=spectral))


class Generator(nn.Module):
    """Latent vector (N, latent_size) -> occupancy probabilities (N, 1, R, R, R)."""

    def __init__(self, cfg: Config):
        super().__init__()
        net, res = cfg.generator, cfg.data.resolution
        channels = channel_plan(res, net.width)
        self.latent_size = cfg.latent_size
        layers = [block(nn.ConvTranspose3d, cfg.latent_size, channels[0], KERNEL, 1, 0, net)]
        for _ in range(net.extra_depth):
            layers.append(block(nn.Conv3d, channels[0], channels[0], 3, 1, 1, net))
        for c_in, c_out in zip(channels, channels[1:]):
            layers.append(hidden(partial(doubling, c_in, c_out, cfg.g_upsample), c_out, net))
        layers.append(nn.Sequential(doubling(channels[-1], 1, cfg.g_upsample, bias=True, spectral=False), nn.Sigmoid()))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z.view(z.shape[0], self.latent_size, 1, 1, 1))

    @torch.no_grad()
    def start_at_occupancy(self, occupancy: float) -> None:
        """Set the output layer's bias to logit(occupancy): with small initial weights every voxel
        then starts near the data's mean occupancy instead of 0.5."""
        p = min(max(occupancy, 1e-4), 1 - 1e-4)
        output = self.layers[-1][0]  # the last doubling; its convolution is last in a resize
        (output[-1] if isinstance(output, nn.Sequential) else output).bias.fill_(math.log(p / (1 - p)))


class Discriminator(nn.Module):
    """Volumes (N, 1, R, R, R) -> one logit per volume (N,)."""

    def __init__(self, cfg: Config):
        super().__init__()
        net, res = cfg.discriminator, cfg.data.resolution
        channels = channel_plan(res, net.width)[::-1]  # full-resolution end first
        layers = [block(nn.Conv3d, 1, channels[0], KERNEL, 2, 1, net)]
        for c_in, c_out in zip(channels, channels[1:]):
            layers.append(block(nn.Conv3d, c_in, c_out, KERNEL, 2, 1, net))
        for _ in range(net.extra_depth):
            layers.append(block(nn.Conv3d, channels[-1], channels[-1], 3, 1, 1, net))
        # valid: 4^3 -> 1^3, sigmoid in the loss; spectrally normalised with the rest when asked
        layers.append(nn.Sequential(conv(nn.Conv3d, channels[-1], 1, KERNEL, 1, 0, bias=True, spectral=net.spectral_norm)))
        self.layers = nn.Sequential(*layers)
        self.output_activation = nn.Sigmoid()

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        return self.layers(volumes).flatten()

    def probability(self, volumes: torch.Tensor) -> torch.Tensor:
        """D(x): the probability that each volume is real (the tables' sigmoid output)."""
        return self.output_activation(self(volumes))


def init_weights(module: nn.Module) -> None:
    """DCGAN-style initialisation, N(0, 0.02) for convolutions, as GAN ports usually do (under
    spectral normalisation the raw weight is initialised; the layer then divides by its norm)."""
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
        weight = module.parametrizations.weight.original if nn.utils.parametrize.is_parametrized(module, "weight") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm3d, nn.InstanceNorm3d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


OPTIMIZERS: dict[OptimizerName, tuple[type[torch.optim.Optimizer], dict[str, str | tuple[str, ...]]]] = {
    "adam": (torch.optim.Adam, {"betas": ("beta1", "beta2")}),
    "adamw": (torch.optim.AdamW, {"betas": ("beta1", "beta2")}),
    "sgd": (torch.optim.SGD, {"momentum": "momentum"}),
    "rmsprop": (torch.optim.RMSprop, {"alpha": "alpha", "momentum": "momentum"}),
    "adadelta": (torch.optim.Adadelta, {"rho": "alpha"}),
}
"""Each `optimizer` a config may name: its torch class, and which NetConfig keys give its
arguments besides lr and weight_decay (Adadelta's rho is the config's `alpha`)."""
FUSED = ("adam", "adamw", "sgd")
"""Those with a fused CUDA implementation (one kernel for all parameters)."""


def optimizers_using(key: str) -> tuple[str, ...]:
    """The optimizers that read NetConfig `key` (e.g. beta1: adam, adamw): where the search space
    asks for it."""
    return tuple(name for name, (_, options) in OPTIMIZERS.items()
                 if any(key in ((keys,) if isinstance(keys, str) else keys) for keys in options.values()))


def optimizer_settings(net: NetConfig) -> dict[str, float | tuple[float, ...]]:
    """The settings of `net`'s optimiser as torch names them (lr, weight_decay, betas, ...)."""
    _, options = OPTIMIZERS[net.optimizer]
    arguments = {arg: getattr(net, keys) if isinstance(keys, str) else tuple(getattr(net, k) for k in keys)
                 for arg, keys in options.items()}
    return {"lr": net.lr, "weight_decay": net.weight_decay, **arguments}


def configure_optimizer(model: nn.Module, net: NetConfig, device: torch.device) -> torch.optim.Optimizer:
    """The optimiser `net` configures for `model`'s parameters; on CUDA the fused implementation."""
    kind, _ = OPTIMIZERS[net.optimizer]
    fast = {"fused": True} if device.type == "cuda" and net.optimizer in FUSED else {}
    return kind(model.parameters(), **optimizer_settings(net), **fast)


def apply_optimizer_settings(optimizer: torch.optim.Optimizer, net: NetConfig) -> None:
    """Set `net`'s settings on a running optimiser (a schedule's change), its moments kept."""
    for group in optimizer.param_groups:
        group.update(optimizer_settings(net))
