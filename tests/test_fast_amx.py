"""The AMX bf16 path (fast_amx.py): close to eager fp32, and chosen for bf16 exactly where the CPU has AMX."""
from __future__ import annotations

import pytest
import torch

from hifigan import Generator
from hifigan.config import preset, with_generator_channels
from hifigan.errors import ConfigError
from hifigan.inference import bench, fast_native
from hifigan.inference.fast import FFTGenerator, folded_copy, optimize, use_amx
from hifigan.inference.fast_amx import AMXGenerator
from hifigan.inference.vocoder import Vocoder


def _generator(name: str, channels: int, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(with_generator_channels(preset(name), channels).generator)


@pytest.mark.parametrize("name,channels", [("v1", 32), ("v3", 32)])
def test_amx_path_is_close_to_eager_fp32(name, channels):
    """ResBlock1 (two convs a step) and ResBlock2 (one); batches and odd lengths; float32 audio of the right shape."""
    generator = _generator(name, channels)
    amx, eager = AMXGenerator(generator), folded_copy(generator)
    torch.manual_seed(1)
    for batch, frames in [(2, 9), (1, 23)]:
        mel = torch.randn(batch, 80, frames) - 4
        with torch.inference_mode():
            expected, got = eager(mel), amx(mel)
        assert got.dtype == torch.float32 and got.shape == expected.shape == (batch, 1, frames * 256)
        error = (got - expected).abs().max()
        assert 1e-7 < error < 0.03 * expected.abs().max()  # bf16 rounding: close, not exact
    assert generator.has_weight_norm  # the caller's generator is untouched


def test_amx_path_refuses_reflect_padding_and_a_wrong_mel():
    config = with_generator_channels(preset("v1"), 16)
    config.generator.conv_padding_mode = "reflect"
    with pytest.raises(ConfigError, match="reflect"):
        AMXGenerator(Generator(config.generator))
    with pytest.raises(ConfigError, match="mel batch"):
        AMXGenerator(_generator("v1", 16))(torch.randn(80, 10))


def test_amx_available_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(fast_native, "cpu_flags", lambda: {"avx512f", "amx_bf16", "amx_tile"})
    assert fast_native.amx_available() == torch.backends.mkldnn.is_available()
    monkeypatch.setattr(fast_native, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert not fast_native.amx_available()


def test_bf16_picks_amx_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(fast_native, "amx_available", lambda: True)
    generator = _generator("v1", 16)
    for method in ("fast", "auto"):
        assert isinstance(optimize(generator, dtype=torch.bfloat16, method=method), AMXGenerator)
    assert isinstance(optimize(generator), FFTGenerator)  # float32 stays exact
    with pytest.raises(ConfigError, match="no options"):
        optimize(generator, dtype=torch.bfloat16, method="fast", native="avx2")


def test_bf16_without_amx_keeps_the_fft_kernel(monkeypatch):
    monkeypatch.setattr(fast_native, "amx_available", lambda: False)
    generator = _generator("v1", 16)
    assert not use_amx() and not use_amx(False)
    with pytest.raises(ConfigError, match="AMX"):
        optimize(generator, dtype=torch.bfloat16, method="fast", amx=True)
    for pays in (True, False):  # bf16 mixing where the kernel has it and it is faster, else float32
        monkeypatch.setattr(fast_native, "bf16_mixing_pays", lambda target="auto", pays=pays: pays)
        for method in ("fast", "auto"):
            fast = optimize(generator, dtype=torch.bfloat16, method=method)
            assert isinstance(fast, FFTGenerator) and fast.bf16 == (pays and fast_native.bf16_available())
    assert not optimize(generator, dtype=torch.bfloat16, method="fast", native=False).bf16  # no kernel: float32


def test_amx_false_asks_for_the_fft_kernel(monkeypatch):
    monkeypatch.setattr(fast_native, "amx_available", lambda: True)
    generator = _generator("v1", 16)
    if fast_native.bf16_available():
        assert isinstance(optimize(generator, dtype=torch.bfloat16, method="fast", amx=False), FFTGenerator)
    else:
        with pytest.raises(ConfigError, match="AVX512_BF16"):
            optimize(generator, dtype=torch.bfloat16, method="fast", amx=False)


def test_vocoder_bf16_runs_the_amx_path_on_amx_cpus(monkeypatch, tiny_config):
    monkeypatch.setattr(fast_native, "amx_available", lambda: True)
    monkeypatch.setattr(fast_native, "bf16_available", lambda target="auto": False)
    torch.manual_seed(0)
    vocoder = Vocoder(Generator(tiny_config.generator), tiny_config, device="cpu", dtype="bfloat16")
    assert vocoder.backend == "fast" and isinstance(vocoder._fast, AMXGenerator)
    monkeypatch.setattr(fast_native, "amx_available", lambda: False)  # neither AMX nor bf16 mixing:
    vocoder = Vocoder(Generator(tiny_config.generator), tiny_config, device="cpu", dtype="bfloat16")
    assert vocoder.backend == "fast" and isinstance(vocoder._fast, FFTGenerator)  # the float32 kernel
    assert not vocoder._fast.bf16


def test_bench_names_and_builds_both_bf16_kernels(monkeypatch):
    cpu = torch.device("cpu")
    specs = bench.parse_paths("fast-bf16:amx,fast-bf16:fft,fast-bf16", cpu)
    assert [s.name for s in specs] == ["torch fp32", "fast bf16 amx", "fast bf16 fft", "fast bf16"]
    with pytest.raises(ConfigError, match="one of amx, fft"):
        bench.parse_paths("fast-bf16:avx", cpu)
    with pytest.raises(ConfigError, match="has no kernel to choose"):
        bench.parse_paths("torch-bf16:amx", cpu)
    monkeypatch.setattr(fast_native, "amx_available", lambda: True)
    names = [s.name for s in bench.default_paths(cpu)]
    assert "fast bf16 amx" in names and "fast bf16" not in names
    generator = _generator("v1", 16)
    config = with_generator_channels(preset("v1"), 16)
    assert isinstance(bench.build_path(specs[1], generator, config, cpu), AMXGenerator)


def test_bf16_mixing_is_timed_once_per_kernel(monkeypatch):
    pays = fast_native.bf16_mixing_pays()
    assert isinstance(pays, bool)
    if not fast_native.bf16_available():
        assert not pays  # nothing to time: no bf16 mixing in this build
        return

    def no_second_timing(*args, **kwargs):
        raise AssertionError("timed twice")

    monkeypatch.setattr(fast_native, "NativeConv1d", no_second_timing)
    assert fast_native.bf16_mixing_pays() is pays
