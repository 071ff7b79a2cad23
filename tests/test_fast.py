"""Fast synthesis paths: the algorithms are exact, and every path computes the generator's audio."""
from __future__ import annotations

import copy
import platform
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hifigan import Generator
from hifigan.config import preset, with_generator_channels
from hifigan.errors import ConfigError
from hifigan.inference import fast_native
from hifigan.inference.fast import ALIASES, PATHS, CastGenerator, FFTGenerator, folded_copy, optimize
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


def runnable_targets() -> list[str]:
    """The explicit kernel targets this CPU can run, best first (from /proc/cpuinfo and the machine)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    flags = {flag for line in text.splitlines() if line.startswith(("flags", "Features"))
             for flag in line.split(":", 1)[1].split()}
    targets = ["avx512"] if "avx512f" in flags else []
    if {"avx2", "fma"} <= flags:
        targets.append("avx2")
    if platform.machine() in ("aarch64", "arm64"):
        targets.append("neon")
    return targets


def _convs():
    yield "torch", lambda conv: conv
    if fast_native.available():
        yield "native", fast_native.NativeConv1d
        for target in runnable_targets():  # every variant this CPU runs, built explicitly
            build = fast_native.kernel(target)
            yield f"native-{target}", lambda conv, build=build: fast_native.NativeConv1d(conv, native=build)
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


@pytest.mark.parametrize("transform", [fft_transform(7, 32), fft_transform(11, 32), fft_transform(11, 64),
                                       fft_transform(5, 12)], ids=lambda t: f"{t.name}-k{t.kernel_size}")
def test_the_folded_analysis_and_synthesis_are_the_transform(transform):
    """The kernel's halvings (fast_native.fold_plan) compute the same X and outputs, in float64."""
    groups = list(transform.groups)
    plan = fast_native.fold_plan(transform.analysis, groups, transform.synthesis, max_folds=3)
    assert plan is not None and plan.folds >= 1
    n = transform.block
    assert sorted(plan.order) == list(range(n)) and sum(plan.rows) == n
    x = torch.randn(n, 5, dtype=torch.float64)
    # the leaves: u and v halvings of x, each leaf's rows times its signal, in X's new order
    signals, u = [], x
    for _ in range(plan.folds):
        half = u.shape[0] // 2
        signals.append(u[:half] - u[half:])
        u = u[:half] + u[half:]
    leaves = [u] + signals[::-1]
    folded, offset = [], 0
    for rows, signal in zip(plan.rows, leaves):
        length = signal.shape[0]
        folded.append(plan.matrices[offset:offset + rows * length].view(rows, length) @ signal)
        offset += rows * length
    assert torch.allclose(torch.cat(folded), (transform.analysis @ x)[plan.order], atol=1e-12)
    for index, (start, size) in enumerate(groups):  # a group's rows stay together, in order
        assert plan.order[plan.starts[index]:plan.starts[index] + size] == list(range(start, start + size))
    # the synthesis by halves: outputs j >= n/2 are P + Q, outputs j < n/2 are P - Q
    hop = transform.hop
    y = torch.randn(n, 3, dtype=torch.float64)
    expected = transform.synthesis[:, plan.order] @ y
    if plan.synthesis_pq is None:
        assert n - hop > n // 2  # only a kernel longer than half the block has no synthesis by halves
        return
    even, half = n - plan.rows[-1], n // 2
    p_rows = plan.synthesis_pq[:half * even].view(half, even) @ y[:even]
    q_rows = plan.synthesis_pq[half * even:].view(half, n - even) @ y[even:]
    got = torch.stack([p_rows[j - half] + q_rows[j - half] if j >= half else p_rows[j] - q_rows[j]
                       for j in range(n - hop, n)])
    assert torch.allclose(got, expected, atol=1e-12)


def test_winograd_is_not_folded():
    transform = winograd_transform(3, 6)
    assert fast_native.fold_plan(transform.analysis, list(transform.groups), transform.synthesis) is None


@pytest.mark.parametrize("kernel,dilation,channels", [(11, 5, 32), (7, 3, 64), (3, 1, 32), (11, 1, 48)])
def test_a_fused_residual_pair_equals_its_two_convs(kernel, dilation, channels):
    """x + conv2(lrelu(conv1(lrelu(x)))) on time tiles (tiles far shorter than the batch, gaps inside)."""
    if not fast_native.available():
        assert fast_native.failure()
        return
    torch.manual_seed(kernel + dilation)
    batch, length = 3, 700
    padded = -(-channels // 16) * 16
    w1, b1 = torch.randn(channels, channels, kernel) * 0.15, torch.randn(channels) * 0.1
    w2, b2 = torch.randn(channels, channels, kernel) * 0.15, torch.randn(channels) * 0.1
    x = torch.randn(batch, channels, length)
    hidden = F.conv1d(F.leaky_relu(x, 0.1), w1, b1, padding=dilation * (kernel - 1) // 2, dilation=dilation)
    expected = x + F.conv1d(F.leaky_relu(hidden, 0.1), w2, b2, padding=(kernel - 1) // 2)

    def pad(w, b):
        wp, bp = torch.zeros(padded, padded, kernel), torch.zeros(padded)
        wp[:channels, :channels], bp[:channels] = w, b
        return wp, bp

    for target in [None] + runnable_targets():
        build = fast_native.kernel(target) if target else None
        first = fast_native.NativeConv1d(FastConv1d(*pad(w1, b1), dilation), native=build)
        second = fast_native.NativeConv1d(FastConv1d(*pad(w2, b2), 1), native=build)
        pair = fast_native.NativePair(first, second, tile_bytes=200 * padded * 4)  # tiles of ~200 rows at most
        layout = SequenceLayout(batch, length, gap=max(first.padding, second.padding))
        assert pair.tiles(layout.total) > 2  # several tiles, and tile edges inside examples and gaps
        origin = pair.padding
        rows = origin + max(pair.input_extent(layout.total), pair.covered(layout.total))
        source = torch.zeros(rows, padded)
        layout.valid(source, origin)[..., :channels] = x.transpose(1, 2)
        out = torch.full((rows, padded), float("nan"))
        pair(source, origin, layout, out, source, 0.1)
        got = layout.valid(out, origin)[..., :channels].transpose(1, 2)
        assert torch.allclose(got, expected, atol=3e-5, rtol=1e-5), target
        mask = torch.zeros(rows, 1)
        layout.valid(mask, origin).fill_(1)
        covered = out[origin:origin + pair.covered(layout.total)]
        assert not covered[mask[origin:origin + covered.shape[0], 0] == 0].any(), target  # gaps and tail zero
        with pytest.raises(ValueError, match="cannot write over its input"):
            pair(source, origin, layout, source, source, 0.1)
        # the resblock sum: added into what `out` holds, averaged, activated for the next layer
        so_far = torch.randn(batch, length, channels)
        total = torch.zeros(rows, padded)
        layout.valid(total, origin)[..., :channels] = so_far
        pair(source, origin, layout, total, source, 0.1, accumulate=True, divisor=3.0, activate=0.2)
        got = layout.valid(total, origin)[..., :channels]
        averaged = F.leaky_relu((so_far + expected.transpose(1, 2)) / 3, 0.2)  # and the next layer's activation
        assert torch.allclose(got, averaged, atol=2e-5, rtol=1e-5), target
        assert not total[origin:origin + covered.shape[0]][mask[origin:origin + covered.shape[0], 0] == 0].any()


def test_the_fast_generator_fuses_pairs_except_with_reflection():
    if not fast_native.available():
        assert fast_native.failure()
        return
    fused = FFTGenerator(_generator("v1", 32))
    assert all(len(stage.pairs) == 9 for stage in fused.stages)  # 3 resblocks x 3 pairs per stage
    config = with_generator_channels(preset("v1"), 32)
    config.generator.conv_padding_mode = "reflect"  # SpeechBrain: margins mirrored before every conv
    assert not any(stage.pairs for stage in FFTGenerator(Generator(config.generator)).stages)
    v2 = FFTGenerator(_generator("v2", 32))
    assert all(stage.pairs for stage in v2.stages)


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
            optimize(_generator("v1", 32), dtype=torch.bfloat16, method="fft", amx=False)
        return
    generator = _generator("v1", 64)
    mel = torch.randn(2, 80, 12) - 4
    with torch.inference_mode():
        expected = folded_copy(generator)(mel)
        got = optimize(generator, dtype=torch.bfloat16, method="fft", amx=False)(mel)
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


def test_every_kernel_variant_this_cpu_runs_is_exact_and_identical():
    """AVX-512, AVX2 + FMA, NEON: one source, the same sums in the same order, so the same bits."""
    targets = runnable_targets()
    auto = fast_native.kernel()
    if auto is None:  # no compiler, no vector code for this CPU, or disabled: the fast path says why
        assert fast_native.failure()
        return
    assert auto is not None and auto.variant == targets[0]  # auto builds the best this CPU has
    generator = _generator("v1", 32)
    mel = torch.randn(2, 80, 9) - 4
    with torch.inference_mode():
        reference = FFTGenerator(generator)(mel)
    for target in targets:
        fast = FFTGenerator(generator, native=target)
        assert fast.kernel.variant == target and fast.kernel.lib._name != auto.lib._name  # its own library
        _assert_matches_eager(generator, fast, [(2, 9), (1, 5)])
        with torch.inference_mode():
            assert torch.equal(fast(mel), reference), target


def test_optimize_passes_the_kernel_target_and_refuses_unknown_ones():
    targets = runnable_targets()
    if targets and fast_native.available():
        assert optimize(_generator("v3", 32), method="fast", native=targets[-1]).kernel.variant == targets[-1]
    with pytest.raises(ConfigError, match="unknown native kernel target 'sse'"):
        optimize(_generator("v3", 32), method="fast", native="sse")


def _reflect_generator() -> Generator:
    config = with_generator_channels(preset("v3"), 32)
    config.generator.conv_padding_mode = "reflect"
    torch.manual_seed(0)
    return Generator(config.generator)


@pytest.mark.parametrize("native", [None, False])
def test_fft_generator_runs_reflect_padding_exactly(native):
    """SpeechBrain's reflect padding is read from the model's convolutions and reproduced, not zero-padded."""
    generator = _reflect_generator()
    fast = optimize(generator, method="fast", native=native)
    assert isinstance(fast, FFTGenerator) and fast.reflect
    assert isinstance(optimize(generator), FFTGenerator)  # "auto" picks it too
    zeros = copy.deepcopy(generator.config)
    zeros.conv_padding_mode = "zeros"
    zero_padded = Generator(zeros)
    zero_padded.load_state_dict(generator.state_dict())
    torch.manual_seed(3)
    for shape in ((1, 80, 7), (3, 80, 13), (2, 80, 5)):  # v3's widest reflected pad needs 5 frames
        mel = torch.randn(shape) - 4
        with torch.inference_mode():
            expected = folded_copy(generator)(mel)
            assert (fast(mel) - expected).abs().max() < 2e-5, shape
            assert (folded_copy(zero_padded)(mel) - expected).abs().max() > 1e-3  # the test can tell


def test_amx_path_leaves_reflect_padding_to_the_fft_path():
    from hifigan.inference.fast import padding_refusal

    assert "reflect" in padding_refusal(_reflect_generator())  # what AMXGenerator checks


@pytest.mark.parametrize("name", ["v1", "v3"])
def test_resblocks_describe_their_own_forward(name):
    """`residual_steps()` is what `forward` computes, bit for bit: the fast path reads that description."""
    generator = _generator(name, 32)
    x = torch.randn(2, generator.resblocks[0].residual_steps()[0].convs[0].in_channels, 40)
    for block in generator.resblocks[:3]:
        y = x
        for step in block.residual_steps():
            h = y
            for conv in step.convs:
                h = conv(F.leaky_relu(h, step.slope))
            y = y + h
        with torch.no_grad():
            assert torch.equal(y, block(x))


class _Gated(nn.Module):
    """A resblock kind the fast path has never heard of (same constructor as the model's blocks)."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int], padding_mode: str = "zeros") -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.convs[0](x))


def _doubled():
    from hifigan.models.generator import ResBlock2

    class Doubled(ResBlock2):
        """A new forward that forgot to update the description it inherits."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    return Doubled


@pytest.mark.parametrize("block,message", [
    (_Gated, r"resblocks\.0 \(_Gated\).*residual_steps"),
    (_doubled(), r"resblocks\.0 \(Doubled\): it overrides forward but not residual_steps"),
])
def test_a_new_block_type_fails_loudly(monkeypatch, block, message):
    """A block the model's definition builds (here in place of ResBlock2) is refused unless it describes itself."""
    from hifigan.models import generator as definition

    monkeypatch.setattr(definition, "ResBlock2", block)
    generator = _generator("v3", 32)
    assert type(generator.resblocks[0]) is block
    with pytest.raises(ConfigError, match=message):
        FFTGenerator(generator)


def test_activation_slopes_are_read_from_the_model(monkeypatch):
    """The generator's slopes (upsampling / resblocks 0.1, final 0.01) come from its module, not a copy."""
    from hifigan.models import generator as definition

    monkeypatch.setattr(definition, "LRELU_SLOPE", 0.3)
    monkeypatch.setattr(definition, "FINAL_LRELU_SLOPE", 0.2)
    generator = _generator("v1", 32)
    _assert_matches_eager(generator, FFTGenerator(generator), [(2, 7)])
    _assert_matches_eager(generator, FFTGenerator(generator, native=False), [(1, 6)])


def test_one_vocabulary_of_path_names(tiny_config):
    """optimize, Vocoder and the CLI take the same names (PATHS) and the same aliases, with no warning."""
    import warnings

    from hifigan import Vocoder
    from hifigan.cli.main import build_parser
    from hifigan.inference.vocoder import BACKENDS

    assert set(BACKENDS) <= set(PATHS) and set(ALIASES.values()) <= set(PATHS)
    generator = _generator("v1", 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(optimize(generator, method="fft"), FFTGenerator)
        assert isinstance(optimize(generator, method="fast"), FFTGenerator)
        assert type(optimize(generator, method="eager")) is type(optimize(generator, method="torch")) is CastGenerator
        model = Generator(tiny_config.generator)
        assert Vocoder(model, tiny_config, device="cpu", backend="fft").backend == "fast"
        assert Vocoder(model, tiny_config, device="cpu", backend="eager").backend == "torch"
    with pytest.raises(ConfigError, match="unknown backend 'compile'; backends are auto, fast, torch, onnx"):
        Vocoder(model, tiny_config, device="cpu", backend="compile")
    parser = build_parser()
    for name, path in [("fft", "fast"), ("eager", "torch"), ("onnxruntime", "onnx"), ("fast", "fast")]:
        assert parser.parse_args(["synthesize", "--out", "x", "--backend", name]).backend == path
