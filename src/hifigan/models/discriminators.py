"""Multi-period and multi-scale discriminators, as in the paper.

Each is called as `d(y, y_hat)` and returns `(real_logits, fake_logits,
real_fmaps, fake_fmaps)`: one entry per sub-discriminator, logits flattened to
[B, N], feature maps as the list of every layer's activation. Module names
follow the authors' code so their `do_` checkpoints map key for key.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from .generator import LRELU_SLOPE, same_padding

Output = tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]


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
    """Scale 0 sees raw audio (spectral norm); each later scale a 2x average-pooled copy."""

    def __init__(self, num_scales: int = 3, channel_divisor: int = 1) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(use_spectral_norm=(i == 0), channel_divisor=channel_divisor)
            for i in range(num_scales)
        )
        self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(num_scales - 1))

    def _inputs(self, index: int, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if index == 0:
            return y, y_hat
        pool = self.meanpools[index - 1]
        return pool(y), pool(y_hat)
