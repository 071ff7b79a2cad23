"""Which mel frames one output frame depends on: the generator's receptive field.

Streaming and exact batching both rest on it. Every layer of the generator is
local and shift-equivariant (one mel frame shifts the output by one hop), so
the samples of output frame t depend only on mel frames [t - left, t + right].
We walk an interval of positions backwards through the layers, from the
output samples of one frame to the mel frames, in the layers' own units:

- a stride-1 conv (kernel k, dilation d, padding p) maps outputs [a, b] to
  inputs [a - p, b - p + d (k - 1)];
- a transposed conv (kernel k, stride u, padding p) writes output
  o = i u - p + j (0 <= j < k), so outputs [a, b] come from inputs
  [ceil((a + p - k + 1) / u), floor((b + p) / u)];
- parallel resblocks take the union of their intervals, and residual sums
  add nothing beyond their convolutions.

`right` frames of lookahead are the algorithmic latency of streaming.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import AudioConfig, GeneratorConfig
from ..models.generator import same_padding

# Fixed by the architecture (the authors' code): conv_pre and conv_post are k=7, padding 3.
_PRE_POST_KERNEL = 7


@dataclass(frozen=True)
class ReceptiveField:
    """Mel-frame context of one output frame: frames [t - left, t + right] shape frame t."""

    left: int
    right: int

    @property
    def frames(self) -> int:
        return self.left + 1 + self.right

    def latency_ms(self, audio: AudioConfig) -> float:
        """Algorithmic latency of streaming: the lookahead frames, in milliseconds."""
        return self.right * audio.frame_ms


def _conv_back(lo: int, hi: int, kernel: int, dilation: int = 1) -> tuple[int, int]:
    pad = same_padding(kernel, dilation)
    return lo - pad, hi - pad + dilation * (kernel - 1)


def _transposed_back(lo: int, hi: int, kernel: int, stride: int, pad: int) -> tuple[int, int]:
    return -((-(lo + pad - kernel + 1)) // stride), (hi + pad) // stride


def _resblocks_back(lo: int, hi: int, config: GeneratorConfig) -> tuple[int, int]:
    """Union over the parallel resblocks of one level of their input intervals."""
    out_lo, out_hi = lo, hi
    for kernel, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
        a, b = lo, hi
        # Walk the block's convolutions from last to first.
        for dilation in reversed(list(dilations)):
            if str(config.resblock) == "1":
                a, b = _conv_back(a, b, kernel, 1)  # convs2 (dilation 1)
            a, b = _conv_back(a, b, kernel, dilation)  # convs1 / convs (dilated)
        out_lo, out_hi = min(out_lo, a), max(out_hi, b)
    return out_lo, out_hi


def receptive_field(config: GeneratorConfig) -> ReceptiveField:
    """The mel frames that output frame t depends on, computed from the architecture."""
    hop = config.total_upsampling
    t = 10_000  # any frame far from the edges; the answer does not depend on it
    lo, hi = t * hop, (t + 1) * hop - 1
    lo, hi = _conv_back(lo, hi, _PRE_POST_KERNEL)  # conv_post
    for index in reversed(range(len(config.upsample_rates))):
        rate, kernel = config.upsample_rates[index], config.upsample_kernel_sizes[index]
        lo, hi = _resblocks_back(lo, hi, config)
        lo, hi = _transposed_back(lo, hi, kernel, rate, config.upsample_padding(index)[0])
    lo, hi = _conv_back(lo, hi, _PRE_POST_KERNEL)  # conv_pre
    return ReceptiveField(left=t - lo, right=hi - t)


def reflect_min_frames(config: GeneratorConfig) -> int:
    """Fewest mel frames a reflect-padded generator (SpeechBrain's) accepts: every reflected pad is shorter
    than its input, binding at the 7-tap input convolution or the first stage's widest resblock convolution."""
    widest = max(same_padding(k, d) for k, ds in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
                 for d in ds)
    return max(_PRE_POST_KERNEL // 2 + 1, widest // config.upsample_rates[0] + 1)
