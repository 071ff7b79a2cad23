"""Fast synthesis paths: the algorithms are exact, and every path computes the generator's audio."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hifigan import Generator
from hifigan.config import preset, with_generator_channels
from hifigan.errors import ConfigError
from hifigan.inference import fast_native
from hifigan.inference.fast import FFTGenerator, folded_copy, optimize
from hifigan.inference.fast_conv import (
    FastConv1d,
    PolyphaseConvTranspose1d,
    SequenceLayout,
    Workspace,
    fft_transform,
    winograd_transform,
)

TRANSFORMS = [fft_transform(3, 16), fft_transform(7, 32), fft_transform(11, 32), fft_transform(5, 12),
              winograd_transform(3, 6), winograd_transform(3, 4)]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda t: f"{t.name}-k{t.kernel_size}")
def test_transform_is_exact_correlation_in_float64(transform):
    torch.manual_seed(0)
    k, n = transform.kernel_size, transform.block
    frame = torch.randn(n, 3, dtype=torch.float64)  # [time, c_in]
    weight = torch.randn(2, 3, k, dtype=torch.float64)  # [c_out, c_in, k]
    spectra = transform.analysis @ frame  # [n, c_in]
    mixed = torch.zeros(n, 2, dtype=torch.float64)
    for (start, size), w in zip(transform.groups, transform.mixing(weight)):
        mixed[start:start + size] = (spectra[start:start + size].reshape(1, -1) @ w).reshape(size, 2)
    out = transform.synthesis @ mixed  # [hop, c_out]
    expected = torch.stack([torch.einsum("oik,ki->o", weight, frame[j:j + k]) for j in range(transform.hop)])
    assert torch.allclose(out, expected, atol=1e-11, rtol=0)


def _sequence(layout: SequenceLayout, examples: torch.Tensor, origin: int, rows: int) -> torch.Tensor:
    """A zero buffer [rows, C] holding `examples` [B, L, C] at the layout's positions."""
    buffer = torch.zeros(rows, examples.shape[-1])
    layout.valid(buffer, origin).copy_(examples)
    return buffer


def _convs():
    yield "torch", lambda conv: conv
    if fast_native.available():
        yield "native", fast_native.NativeConv1d
    else:  # the machine cannot build the kernel: FFTGenerator must say why and fall back
        assert fast_native.failure()


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (3, 5), (7, 3), (11, 1), (11, 5)])
def test_fast_conv_equals_conv1d_on_a_batch_with_gaps(kernel, dilation):
    torch.manual_seed(kernel * 10 + dilation)
    channels, batch, length = 32, 3, 57
    weight, bias = torch.randn(channels, channels, kernel) * 0.2, torch.randn(channels)
    x = torch.randn(batch, channels, length)
    base = torch.randn(batch, channels, length)
    expected = base + F.conv1d(F.leaky_relu(x, 0.1), weight, bias, padding=dilation * (kernel - 1) // 2,
                               dilation=dilation)
    conv = FastConv1d(weight, bias, dilation)
    layout = SequenceLayout(batch, length, gap=conv.padding)
    origin = conv.padding
    rows = origin + conv.input_extent(layout.total)
    for name, wrap in _convs():
        source = _sequence(layout, x.transpose(1, 2), origin, rows)
        base_seq = _sequence(layout, base.transpose(1, 2), origin, rows)
        out = torch.full((rows, channels), float("nan"))
        wrap(conv)(source, origin, layout, out, base_seq, Workspace(), 0.1)
        got = layout.valid(out, origin).transpose(1, 2)
        assert torch.allclose(got, expected, atol=2e-5, rtol=1e-5), name
        # rows outside the examples are zero: the next layer's zero padding
        covered = conv.covered(layout.total)
        mask = torch.zeros(rows, 1)
        layout.valid(mask, origin).fill_(1)
        assert not out[origin:origin + covered][mask[origin:origin + covered, 0] == 0].any(), name


@pytest.mark.parametrize("kernel,stride", [(16, 8), (4, 2), (8, 4), (11, 5), (3, 3)])
def test_polyphase_transposed_conv_equals_conv_transpose1d(kernel, stride):
    torch.manual_seed(kernel)
    c_in, c_out, length = 6, 5, 13
    weight, bias = torch.randn(c_in, c_out, kernel), torch.randn(c_out)
    padding = (kernel - stride) // 2
    x = torch.randn(1, c_in, length)
    expected = F.conv_transpose1d(x, weight, bias, stride=stride, padding=padding)
    up = PolyphaseConvTranspose1d(weight, bias, stride, padding)
    origin = max(0, -up.min_offset)
    source = torch.zeros(origin + length + max(0, up.max_offset), c_in)
    source[origin:origin + length] = x[0].t()
    out = torch.empty(length * stride, c_out)
    up(source, origin, length, out, Workspace())
    assert torch.allclose(out.t()[None], expected, atol=1e-5)


def _generator(name: str, channels: int, seed: int = 0) -> Generator:
    """A small generator with the authors' random initialisation (audio of a few tenths, inside tanh)."""
    torch.manual_seed(seed)
    return Generator(with_generator_channels(preset(name), channels).generator)


def _assert_matches_eager(generator: Generator, fast, shapes) -> None:
    eager = folded_copy(generator)
    for batch, frames in shapes:  # later shapes shrink and regrow the reused buffers
        mel = torch.randn(batch, 80, frames) - 4
        with torch.inference_mode():
            expected, got = eager(mel), fast(mel)
        assert got.shape == expected.shape == (batch, 1, frames * generator.hop_length)
        assert expected.abs().max() > 0.05  # a non-trivial signal
        assert (got - expected).abs().max() <= 1e-5, (batch, frames)


@pytest.mark.parametrize("name,channels", [("v1", 64), ("v2", 32), ("v3", 64)])
def test_fft_generator_equals_eager(name, channels):
    """V1/V2/V3 shapes (V2-32 has 2..16-channel stages: channel padding), batches with gaps."""
    generator = _generator(name, channels)
    fast = FFTGenerator(generator)
    assert fast.native == fast_native.available()
    _assert_matches_eager(generator, fast, [(3, 6), (1, 11)])
    assert generator.has_weight_norm  # the caller's generator is untouched


def test_pytorch_fallback_equals_eager():
    """The pure-PyTorch implementation (machines without a compiler or AVX-512)."""
    generator = _generator("v3", 32)
    _assert_matches_eager(generator, FFTGenerator(generator, native=False), [(2, 7)])


def test_bf16_fft_is_close_but_not_exact():
    if not fast_native.bf16_available():
        with pytest.raises(ConfigError):
            optimize(_generator("v1", 32), dtype=torch.bfloat16, method="fft")
        return
    generator = _generator("v1", 64)
    mel = torch.randn(2, 80, 12) - 4
    with torch.inference_mode():
        expected = folded_copy(generator)(mel)
        got = optimize(generator, dtype=torch.bfloat16, method="fft")(mel)
    error = (got - expected).abs().max()
    assert 1e-6 < error < 0.05 * expected.abs().max()


def test_eager_bf16_path_returns_float32_audio():
    generator = _generator("v2", 32)
    mel = torch.randn(1, 80, 7) - 4
    path = optimize(generator, dtype=torch.bfloat16, method="eager")
    with torch.inference_mode():
        audio = path(mel)
        expected = folded_copy(generator)(mel)
    assert audio.dtype == torch.float32 and audio.shape == expected.shape
    assert (audio - expected).abs().max() < 0.1 * expected.abs().max() + 1e-3


def test_auto_picks_the_exact_path_on_cpu():
    assert isinstance(optimize(_generator("v1", 32)), FFTGenerator)


@pytest.mark.parametrize("kwargs", [
    {"method": "warp"},
    {"method": "fft", "device": "cuda"},
    {"method": "cuda-graph"},
    {"dtype": torch.float16},
])
def test_optimize_rejects_impossible_combinations(kwargs):
    with pytest.raises(ConfigError):
        optimize(_generator("v1", 32), **kwargs)


def test_fft_generator_rejects_a_wrong_mel():
    fast = optimize(_generator("v1", 32))
    with pytest.raises(ConfigError, match="mel batch"):
        fast(torch.randn(80, 10))
    with pytest.raises(ConfigError, match="mel batch"):
        fast(torch.randn(1, 64, 10))
