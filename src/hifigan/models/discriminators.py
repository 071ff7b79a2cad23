"""Multi-period and multi-scale discriminators, as in the paper, and the registry that builds them.

Each is called as `d(y, y_hat)` and returns `(real_logits, fake_logits,
real_fmaps, fake_fmaps)`: one entry per sub-discriminator, logits flattened to
[B, N], feature maps as the list of every layer's activation. Module names
follow the authors' code so their `do_` checkpoints map key for key.

`DISCRIMINATORS` maps a name (`mpd`, `msd`) to the builder of that
discriminator from a config; training (`training/module.py`) and checkpoint
loading (`checkpoints/convert.py`) build the set from it, and the name is
the state-dict prefix (`mpd.`, `msd.`). A new discriminator is a class here
and one entry in the registry.

Spectral norm (the first scale discriminator) is `SpectralNorm`, a
parametrization that runs the power iteration of the authors'
`torch.nn.utils.spectral_norm` (v from u, then u from v) rather than
torch's newer `parametrizations.spectral_norm` (u first, then v): from the
same unconverged u and v the two give a first-step sigma up to ~7% apart. Its
state-dict keys are the parametrization's (`parametrizations.weight.original`,
`parametrizations.weight.0._u`, `._v`), so checkpoints saved with torch's
parametrization load unchanged; in eval mode both compute u^T W v from the
stored vectors, so eval outputs are the same.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ..config import DiscriminatorConfig
from .generator import LRELU_SLOPE, same_padding

Output = tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]
# the authors' MSD average-pools with AvgPool1d(4, 2, padding=2); NVIDIA's with padding=1
AUTHORS_POOL_PADDING = 2


class SpectralNorm(nn.Module):
    """W / sigma(W), sigma by one power-iteration step per training-mode forward, in the old hook's order.

    As `torch.nn.utils.spectral_norm` (the authors' code): u and v start as
    random unit vectors (u drawn first) with no warm-up iterations; each
    training-mode evaluation updates v = normalize(W^T u), then
    u = normalize(W v), in place and without gradient; sigma = u^T W v with
    u, v treated as constants. In eval mode the stored u, v are used as they are.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        if n_power_iterations <= 0:
            raise ValueError(f"n_power_iterations must be positive, got {n_power_iterations}")
        self.n_power_iterations = n_power_iterations
        self.dim = dim
        self.eps = eps
        with torch.no_grad():
            matrix = self._matrix(weight)
            height, width = matrix.shape
            u = F.normalize(weight.new_empty(height).normal_(0, 1), dim=0, eps=eps)
            v = F.normalize(weight.new_empty(width).normal_(0, 1), dim=0, eps=eps)
        self.register_buffer("_u", u)
        self.register_buffer("_v", v)

    def _matrix(self, weight: torch.Tensor) -> torch.Tensor:
        if self.dim != 0:
            weight = weight.permute(self.dim, *[d for d in range(weight.dim()) if d != self.dim])
        return weight.reshape(weight.shape[0], -1)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = self._matrix(weight)
        u, v = self._u, self._v
        if self.training:
            with torch.no_grad():
                for _ in range(self.n_power_iterations):
                    F.normalize(torch.mv(matrix.t(), u), dim=0, eps=self.eps, out=v)
                    F.normalize(torch.mv(matrix, v), dim=0, eps=self.eps, out=u)
            # the graph keeps copies: a second forward before backward updates the buffers again
            u = u.clone(memory_format=torch.contiguous_format)
            v = v.clone(memory_format=torch.contiguous_format)
        sigma = torch.dot(u, torch.mv(matrix, v))
        return weight / sigma


def spectral_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """Spectral norm on `module.<name>` with the authors' power iteration (see `SpectralNorm`)."""
    dim = 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0
    # unsafe: registering evaluates the parametrization once otherwise (an extra power-iteration step
    # that the old hook does not take)
    parametrize.register_parametrization(module, name, SpectralNorm(getattr(module, name), dim=dim), unsafe=True)
    return module


def _conv_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv layers then the output conv: (flattened logits, every layer's activation)."""
    fmaps = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmaps.append(x)
    x = conv_post(x)
    fmaps.append(x)
    return torch.flatten(x, 1, -1), fmaps


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into [T / p, p] and applies 2-D convs along time only."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, channel_divisor: int = 1) -> None:
        super().__init__()
        self.period = period
        pad = (same_padding(kernel_size, 1), 0)
        # channel_divisor > 1 narrows every layer (tests/CI only; 1 = the paper's widths)
        widths = [1] + [_narrow(w, channel_divisor) for w in (32, 128, 512, 1024)]
        top = widths[-1]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=pad))
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.convs.append(weight_norm(nn.Conv2d(top, top, (kernel_size, 1), 1, padding=(2, 0))))
        self.conv_post = weight_norm(nn.Conv2d(top, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = x.shape
        if length % self.period:
            extra = self.period - length % self.period
            x = F.pad(x, (0, extra), mode="reflect")
            length += extra
        x = x.view(batch, channels, length // self.period, self.period)
        return _conv_stack(self.convs, self.conv_post, x)


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convs over the (possibly average-pooled) waveform."""

    # (in, out, kernel, stride, groups, padding) as in the paper's MSD
    LAYERS = [
        (1, 128, 15, 1, 1, 7),
        (128, 128, 41, 2, 4, 20),
        (128, 256, 41, 2, 16, 20),
        (256, 512, 41, 4, 16, 20),
        (512, 1024, 41, 4, 16, 20),
        (1024, 1024, 41, 1, 16, 20),
        (1024, 1024, 5, 1, 1, 2),
    ]

    def __init__(self, use_spectral_norm: bool = False, channel_divisor: int = 1) -> None:
        super().__init__()
        norm: Callable[[nn.Module], nn.Module] = spectral_norm if use_spectral_norm else weight_norm
        d = channel_divisor  # > 1 narrows every layer (tests/CI only; 1 = the paper's widths)
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(_narrow(c_in, d), _narrow(c_out, d), k, s,
                           groups=math.gcd(g, _narrow(c_in, d), _narrow(c_out, d)), padding=p))
            for c_in, c_out, k, s, g, p in self.LAYERS
        )
        self.conv_post = norm(nn.Conv1d(_narrow(1024, d), 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.conv_post, x)


def _narrow(channels: int, divisor: int) -> int:
    """A layer width divided by `divisor`; the 1-channel waveform input stays 1."""
    return channels if channels == 1 else max(channels // divisor, 1)


class _Ensemble(nn.Module):
    """Runs every sub-discriminator on the real and the generated waveform."""

    discriminators: nn.ModuleList

    def _inputs(self, index: int, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y, y_hat

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> Output:
        real_logits, fake_logits, real_fmaps, fake_fmaps = [], [], [], []
        for i, disc in enumerate(self.discriminators):
            y, y_hat = self._inputs(i, y, y_hat)
            logit_r, fmap_r = disc(y)
            logit_g, fmap_g = disc(y_hat)
            real_logits.append(logit_r)
            fake_logits.append(logit_g)
            real_fmaps.append(fmap_r)
            fake_fmaps.append(fmap_g)
        return real_logits, fake_logits, real_fmaps, fake_fmaps


class MultiPeriodDiscriminator(_Ensemble):
    def __init__(self, periods: list[int] | tuple[int, ...] = (2, 3, 5, 7, 11), channel_divisor: int = 1) -> None:
        super().__init__()
        self.periods = list(periods)
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, channel_divisor=channel_divisor) for p in self.periods
        )


class MultiScaleDiscriminator(_Ensemble):
    """Scale 0 sees raw audio (spectral norm); each later scale a 2x average-pooled copy.

    `pool_padding`: of each AvgPool1d(4, 2): 2 in the authors' code, 1 in NVIDIA's.
    """

    def __init__(self, num_scales: int = 3, channel_divisor: int = 1,
                 pool_padding: int = AUTHORS_POOL_PADDING) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(use_spectral_norm=(i == 0), channel_divisor=channel_divisor)
            for i in range(num_scales)
        )
        self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=pool_padding) for _ in range(num_scales - 1))

    def _inputs(self, index: int, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if index == 0:
            return y, y_hat
        pool = self.meanpools[index - 1]
        return pool(y), pool(y_hat)


# ---- the registry -------------------------------------------------------------------
# name -> builder(discriminator config, channel divisor). The name is the attribute of the training
# module and the state-dict prefix; the order is the authors' order of construction and of the
# forward passes (mpd, then msd). Their optimiser and loss sums take the set in reverse order
# (itertools.chain(msd, mpd), loss_gen_s + loss_gen_f + ...): see `summation_order`.
DiscriminatorBuilder = Callable[[DiscriminatorConfig, int], nn.Module]


def _build_mpd(config: DiscriminatorConfig, channel_divisor: int = 1) -> MultiPeriodDiscriminator:
    return MultiPeriodDiscriminator(config.periods, channel_divisor=channel_divisor)


def _build_msd(config: DiscriminatorConfig, channel_divisor: int = 1) -> MultiScaleDiscriminator:
    return MultiScaleDiscriminator(config.num_scales, channel_divisor=channel_divisor,
                                   pool_padding=config.scale_pool_padding)


DISCRIMINATORS: dict[str, DiscriminatorBuilder] = {
    "mpd": _build_mpd,
    "msd": _build_msd,
}


def build_discriminators(config: DiscriminatorConfig, channel_divisor: int = 1) -> dict[str, nn.Module]:
    """Every registered discriminator for `config`, by name, in registry order."""
    return {name: build(config, channel_divisor) for name, build in DISCRIMINATORS.items()}


def summation_order(names) -> list[str]:
    """The order in which the authors chain the discriminators' parameters and sum their losses."""
    return list(reversed(list(names)))
