"""The HiFi-GAN generator: transposed-convolution upsampling with multi-receptive-field fusion.

Module names follow the authors' code (conv_pre, ups, resblocks, convs1/convs2,
conv_post) so that their checkpoints map onto ours key for key; weight norm is
a torch parametrization, folded away by `fold_weight_norm()` for inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ..config import GeneratorConfig

LRELU_SLOPE = 0.1
# The authors' last activation before conv_post is F.leaky_relu with its default slope.
FINAL_LRELU_SLOPE = 0.01
INIT_STD = 0.01


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 convolution."""
    return (kernel_size * dilation - dilation) // 2


def _init_normal(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        module.weight.data.normal_(0.0, INIT_STD)


def fold_weight_parametrization(module: nn.Module) -> None:
    """Replace a parametrized `weight` (weight or spectral norm) by its current plain value.

    torch's `remove_parametrizations` deletes the property from the module's
    parametrized class, which a `copy.deepcopy` of the model shares, so folding
    a copy would break the original; and it fails inside inference mode. This
    restores the plain class on this module alone and works in any grad mode.
    """
    if not parametrize.is_parametrized(module, "weight"):
        return
    if len(module.parametrizations) != 1:
        raise ValueError(f"{type(module).__name__} has parametrizations besides 'weight'")
    with torch.inference_mode(False), torch.no_grad():
        weight = module.weight.detach().clone()
    requires_grad = any(p.requires_grad for p in module.parametrizations.weight.parameters())
    module.__class__ = module.__class__.__bases__[0]  # parametrize subclasses the original class
    del module.parametrizations
    module.weight = nn.Parameter(weight, requires_grad=requires_grad)


@dataclass(frozen=True)
class ResidualStep:
    """One residual step of a resblock: x = x + convs[-1](lrelu(... convs[0](lrelu(x, slope)) ...)).

    Each resblock describes its own `forward` with these (`residual_steps()`), so
    the fast CPU path (inference/fast.py) follows the model's definition instead
    of telling block kinds apart by their attribute names; a block without the
    description is refused there, not mis-read.
    """

    convs: tuple[nn.Conv1d, ...]
    slope: float


class ResBlock1(nn.Module):
    """Pairs of (dilated conv, plain conv), each pair residual (V1, V2)."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int],
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                  padding=same_padding(kernel_size, d), padding_mode=padding_mode))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1,
                                  padding=same_padding(kernel_size, 1), padding_mode=padding_mode))
            for _ in dilations
        )
        self.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            residual = conv1(F.leaky_relu(x, LRELU_SLOPE))
            residual = conv2(F.leaky_relu(residual, LRELU_SLOPE))
            x = x + residual
        return x

    def residual_steps(self) -> list[ResidualStep]:
        """`forward` as data: per dilation, x = x + conv2(lrelu(conv1(lrelu(x))))."""
        return [ResidualStep((conv1, conv2), LRELU_SLOPE) for conv1, conv2 in zip(self.convs1, self.convs2)]


class ResBlock2(nn.Module):
    """Single dilated convs, each residual (V3)."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int],
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                  padding=same_padding(kernel_size, d), padding_mode=padding_mode))
            for d in dilations
        )
        self.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x

    def residual_steps(self) -> list[ResidualStep]:
        """`forward` as data: per dilation, x = x + conv(lrelu(x))."""
        return [ResidualStep((conv,), LRELU_SLOPE) for conv in self.convs]


class Generator(nn.Module):
    """Mel [B, n_mels, frames] -> waveform [B, 1, frames * prod(upsample_rates)] in [-1, 1]."""

    def __init__(self, config: GeneratorConfig, n_mels: int = 80) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.n_mels = n_mels
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.num_upsamples = len(config.upsample_rates)
        channels = config.upsample_initial_channel
        mode = config.conv_padding_mode
        self.conv_pre = weight_norm(nn.Conv1d(n_mels, channels, 7, 1, padding=3, padding_mode=mode))

        self.ups = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)):
            padding, output_padding = config.upsample_padding(i)
            self.ups.append(
                weight_norm(
                    nn.ConvTranspose1d(
                        channels // 2**i, channels // 2 ** (i + 1), kernel, rate,
                        padding=padding, output_padding=output_padding,
                    )
                )
            )
        self.ups.apply(_init_normal)

        block = ResBlock1 if str(config.resblock) == "1" else ResBlock2
        self.resblocks = nn.ModuleList()
        for i in range(self.num_upsamples):
            ch = channels // 2 ** (i + 1)
            for kernel, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(block(ch, kernel, list(dilations), mode))

        self.conv_post = weight_norm(
            nn.Conv1d(channels // 2**self.num_upsamples, 1, 7, 1, padding=3, padding_mode=mode))

    @property
    def hop_length(self) -> int:
        return self.config.total_upsampling

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            fused = blocks[0](x)
            for block in blocks[1:]:
                fused = fused + block(x)
            x = fused / self.num_kernels
        x = self.conv_post(F.leaky_relu(x, FINAL_LRELU_SLOPE))
        return torch.tanh(x)

    # ---- weight norm -------------------------------------------------------------
    def _weight_normed(self) -> Iterator[nn.Module]:
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                yield module

    @property
    def has_weight_norm(self) -> bool:
        return any(parametrize.is_parametrized(m, "weight") for m in self._weight_normed())

    def fold_weight_norm(self) -> "Generator":
        """Replace every weight-norm parametrization by its plain weight (for inference)."""
        for module in self._weight_normed():
            fold_weight_parametrization(module)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
