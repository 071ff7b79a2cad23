"""bfloat16 CPU synthesis on oneDNN's AMX kernels (Sapphire Rapids and later): `AMXGenerator`.

Why: on CPUs with AMX tiles a bf16 matrix product runs several times faster than
the AVX-512 dot products of the native FFT kernel, so the plain direct
convolution in bf16 beats the fast algorithms there. Eager bf16 PyTorch does not
get that speed: it converts every weight to oneDNN's layout on every call and
runs the leaky ReLUs, residual adds and the fusion average as separate passes.
This path calls oneDNN's inference convolutions (`torch.ops.mkldnn`, the ones
inductor's freezing emits) directly:

- every 1-D convolution is a 2-D one on [B, C, 1, T] channels-last bf16, the
  layout oneDNN's AMX brgemm kernels read and write, kept across all layers
  (no activation reorder between layers);
- weights are pre-packed once into the kernels' blocked layout;
- a resblock step x = x + conv2(lrelu(conv1(lrelu(x)))) is one leaky ReLU pass
  and two convolutions: conv1 applies the inner leaky ReLU to its output, conv2
  adds its result into x in place (a fused binary post-op);
- the 1 / num_kernels of the fusion average is folded into the next layer's
  weights (leaky ReLU is positively homogeneous: lrelu(x / n) = lrelu(x) / n).

Precision: weights and activations (also the residual stream) are bf16, sums
float32 inside the kernels; conv_pre (mel in), the first transposed convolution
and conv_post (audio out) run in float32, so neither the input mel nor the
output samples are rounded to bf16. The first upsampling is the layer most
sensitive to rounding (its input reaches ~20 on speech): in bf16 it alone put
0.34 max abs error on a validation clip where the rest of the model gives 0.07,
for ~5% of the FLOPs.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models import Generator
from ..models import generator as definition

BF16 = torch.bfloat16
CHANNELS_LAST = torch.channels_last
PACKING_FRAMES = 256  # the mel length weights are packed for (the packed layout serves every length)


def _mkldnn():
    return torch.ops.mkldnn


class _Conv:
    """One stride-1 Conv1d as a pre-packed oneDNN bf16 2-D convolution over [B, C, 1, T]."""

    def __init__(self, conv: nn.Conv1d, length: int, scale: float = 1.0) -> None:
        weight = (conv.weight.detach().float() * scale).to(BF16).unsqueeze(2).contiguous(memory_format=CHANNELS_LAST)
        self.bias = conv.bias.detach().to(BF16)
        self.padding, self.dilation = [0, conv.padding[0]], [1, conv.dilation[0]]
        self.weight = _mkldnn()._reorder_convolution_weight(weight, self.padding, [1, 1], self.dilation, 1,
                                                            [1, conv.in_channels, 1, length])

    def __call__(self, x: torch.Tensor, slope: Optional[float] = None) -> torch.Tensor:
        """conv(x), or lrelu(conv(x), slope) with the activation fused into the kernel."""
        attr, scalars = ("none", []) if slope is None else ("leaky_relu", [slope])
        return _mkldnn()._convolution_pointwise(x, self.weight, self.bias, self.padding, [1, 1], self.dilation,
                                                1, attr, scalars, None)

    def add_into(self, base: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """base += conv(x), the sum fused into the kernel (in place)."""
        return _mkldnn()._convolution_pointwise_.binary(base, x, self.weight, self.bias, self.padding, [1, 1],
                                                        self.dilation, 1, "add", 1.0, None, [], None)


class _Up:
    """One ConvTranspose1d as a oneDNN bf16 transposed 2-D convolution over [B, C, 1, T]."""

    def __init__(self, up: nn.ConvTranspose1d, scale: float) -> None:
        self.weight = (up.weight.detach().float() * scale).to(BF16).unsqueeze(2).contiguous(
            memory_format=CHANNELS_LAST)
        self.bias = up.bias.detach().to(BF16)
        self.padding, self.output_padding = [0, up.padding[0]], [0, up.output_padding[0]]
        self.stride = [1, up.stride[0]]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _mkldnn()._convolution_transpose_pointwise(x, self.weight, self.bias, self.padding,
                                                          self.output_padding, self.stride, [1, 1], 1, "none",
                                                          [], None)


class AMXGenerator(nn.Module):
    """The generator in bf16 on oneDNN's AMX convolutions (module docstring); float32 audio out.

    Runs on any CPU oneDNN supports (it falls back to AVX-512 bf16 code without
    AMX), but it is only chosen where `fast_native.amx_available()`: elsewhere
    the native FFT kernel is faster. Reads the model's structure as
    FFTGenerator does (`residual_steps()`); ConfigError for what it cannot run.
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        from .fast import _residual_steps, folded_copy, padding_refusal

        if not torch.backends.mkldnn.is_available():
            raise ConfigError("the AMX bf16 path needs a PyTorch build with oneDNN (mkldnn)")
        refusal = padding_refusal(generator)
        if refusal:
            raise ConfigError(refusal)
        model = folded_copy(generator, torch.float32, "cpu")
        self.n_mels, self.hop_length = model.n_mels, model.hop_length
        self.up_slope, self.final_slope = definition.LRELU_SLOPE, definition.FINAL_LRELU_SLOPE
        n = model.num_kernels
        self.pre, self.first_up = model.conv_pre, model.ups[0]  # float32 (module docstring)
        length = PACKING_FRAMES
        self.ups: list[Optional[_Up]] = []  # None: the first, in float32
        # per stage, per resblock, per residual step: (convs, slope)
        self.stages: list[list[list[tuple[list[_Conv], float]]]] = []
        for i, up in enumerate(model.ups):
            self.ups.append(None if i == 0 else _Up(up, 1.0 / n))
            length *= up.stride[0]
            blocks = []
            for j in range(i * n, (i + 1) * n):
                steps = _residual_steps(model.resblocks[j], f"resblocks.{j}")
                blocks.append([([_Conv(c, length) for c in step.convs], step.slope) for step in steps])
            self.stages.append(blocks)
        post = model.conv_post
        self.post_weight = post.weight.detach() / n  # the last fusion average, folded in
        self.post_bias, self.post_padding = post.bias.detach(), post.padding[0]

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ConfigError(f"expected a mel batch [B, {self.n_mels}, frames], got {tuple(mel.shape)}")
        x = self.first_up(F.leaky_relu(self.pre(mel.to(device="cpu", dtype=torch.float32)), self.up_slope))
        x = x.to(BF16).unsqueeze(2).contiguous(memory_format=CHANNELS_LAST)  # [B, C, 1, T]
        for up, blocks in zip(self.ups, self.stages):
            if up is not None:
                x = up(F.leaky_relu(x, self.up_slope))
            fused: Optional[torch.Tensor] = None
            for index, steps in enumerate(blocks):
                y = x if index == len(blocks) - 1 else x.clone()  # the last block may overwrite x
                for convs, slope in steps:
                    h = F.leaky_relu(y, slope)
                    for conv in convs[:-1]:
                        h = conv(h, slope)
                    convs[-1].add_into(y, h)
                fused = y if fused is None else fused.add_(y)
            x = fused
        h = F.leaky_relu(x, self.final_slope).squeeze(2).float()
        return torch.tanh(F.conv1d(h, self.post_weight, self.post_bias, padding=self.post_padding))
