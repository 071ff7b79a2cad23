"""`hifigan bench synth`: the benchmark runs every path, checks it, and reports honest numbers."""
from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hifigan import Generator
from hifigan.cli.main import main
from hifigan.config import preset, with_generator_channels
from hifigan.errors import ConfigError
from hifigan.inference.bench import (
    OPENVINO_MISSING,
    PathSpec,
    benchmark_mel,
    build_path,
    default_paths,
    generator_flops,
    parse_paths,
    quality_check,
    run_synth_benchmark,
)
from hifigan.inference.fast import folded_copy
from hifigan.inference.synthesis import bundled_samples


@pytest.mark.parametrize("name", ["v1", "v3"])
def test_flop_count_matches_torch_counter(name):
    generator = Generator(with_generator_channels(preset(name), 32).generator).eval()
    mel = torch.randn(2, 80, 13)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        generator(mel)
    assert generator_flops(generator, 13) * 2 == counter.get_total_flops()


def test_fast_path_does_less_than_half_the_work_on_v1():
    from hifigan.inference.fast import FFTGenerator

    generator = Generator(preset("v1").generator)
    fraction = FFTGenerator(generator).arithmetic_flops(1, 100) / generator_flops(generator, 100)
    assert 0.35 < fraction < 0.5


def test_benchmark_mel_is_real_speech_of_the_asked_length(tiny_config):
    mel = benchmark_mel(tiny_config, seconds=0.5, batch_size=2)
    frames = round(0.5 * tiny_config.audio.sampling_rate / tiny_config.audio.hop_length)
    assert mel.shape == (2, tiny_config.audio.n_mels, frames)
    assert torch.isfinite(mel).all() and mel.max() > -5  # not the log floor: there is speech
    assert not torch.equal(mel[0], mel[1])  # items start at different places


def test_a_kernel_pins_the_fast_path():
    cpu = torch.device("cpu")
    specs = parse_paths("fast:avx2,fast:pytorch,fast-bf16:fft,fast-bf16:amx", cpu)
    assert [s.name for s in specs] == ["torch fp32", "fast fp32 avx2", "fast fp32 pytorch", "fast bf16 fft",
                                       "fast bf16 amx"]
    assert [s.options for s in specs[1:]] == [{"native": "avx2"}, {"native": False}, {"amx": False}, {"amx": True}]
    with pytest.raises(ConfigError, match="one of amx, fft, not 'avx2'"):
        parse_paths("fast-bf16:avx2", cpu)
    with pytest.raises(ConfigError, match="not 'amx'"):
        parse_paths("fast:amx", cpu)
    with pytest.raises(ConfigError, match="has no kernel to choose"):
        parse_paths("torch:avx2", cpu)


def test_the_pytorch_kernel_of_fast_runs_without_the_c_kernel(tiny_config):
    generator = Generator(tiny_config.generator)
    fast = build_path(PathSpec("fast", kernel="pytorch"), generator, tiny_config, torch.device("cpu"))
    assert fast.kernel is None  # the PyTorch implementation of the same algorithms
    mel = torch.randn(1, tiny_config.audio.n_mels, 12) - 4
    with torch.inference_mode():
        assert torch.allclose(fast(mel), folded_copy(generator)(mel), atol=1e-5)


def test_parse_paths():
    cpu = torch.device("cpu")
    assert parse_paths("fast, torch-bf16,fast,onnx", cpu) == [
        PathSpec("torch"), PathSpec("fast"), PathSpec("torch", torch.bfloat16), PathSpec("onnx")]
    with pytest.raises(ConfigError, match="unknown path"):
        parse_paths("fastest", cpu)


def test_paths_have_one_name_whatever_the_spelling():
    """The benchmark names paths as optimize and Vocoder do; the aliases give the same spec and row name."""
    cpu = torch.device("cpu")
    assert parse_paths("fft,eager-bf16,onnxruntime", cpu) == parse_paths("fast,torch-bf16,onnx", cpu)
    assert [s.name for s in parse_paths("fft,onnxruntime", cpu)] == ["torch fp32", "fast fp32", "onnx fp32"]
    assert PathSpec("eager") == PathSpec("torch") and PathSpec("fft").method == "fast"
    with pytest.raises(ConfigError, match="paths are fast, torch, compile, cuda-graph, onnx"):
        PathSpec("auto")  # the benchmark times concrete paths



def test_openvino_is_a_benchmark_path_with_its_dtype():
    cpu = torch.device("cpu")
    specs = parse_paths("openvino,openvino-bf16", cpu)
    assert specs == [PathSpec("torch"), PathSpec("openvino"), PathSpec("openvino", torch.bfloat16)]
    assert [s.name for s in specs] == ["torch fp32", "openvino fp32", "openvino bf16"]
    assert PathSpec("openvino").exact and not PathSpec("openvino", torch.bfloat16).exact  # fp32 max abs, bf16 mel L1
    with pytest.raises(ConfigError, match="has no kernel to choose"):
        parse_paths("openvino-bf16:amx", cpu)


def test_openvino_stays_benchmark_only(tiny_config):
    """Not a synthesis path of optimize / Vocoder / synthesize --backend: only the benchmark times it."""
    from hifigan.inference import Vocoder
    from hifigan.inference.fast import PATHS, path_name

    assert "openvino" not in PATHS
    with pytest.raises(ConfigError, match="unknown synthesis path 'openvino'"):
        path_name("openvino")
    with pytest.raises(ConfigError, match="unknown backend 'openvino'"):
        Vocoder(Generator(tiny_config.generator), tiny_config, backend="openvino")


def _fake_openvino(monkeypatch, installed: bool) -> None:
    """openvino importable (an empty module with a spec) or not (None in sys.modules), whatever is installed."""
    module = types.ModuleType("openvino")
    module.__spec__ = importlib.machinery.ModuleSpec("openvino", None)
    monkeypatch.setitem(sys.modules, "openvino", module if installed else None)


def test_default_cpu_paths_have_openvino_only_where_it_is_installed(monkeypatch):
    cpu = torch.device("cpu")
    _fake_openvino(monkeypatch, installed=True)
    names = [s.name for s in default_paths(cpu)]
    assert "openvino fp32" in names and "openvino bf16" in names
    assert all("openvino" not in s.name for s in default_paths(torch.device("cuda")))  # CPU only
    _fake_openvino(monkeypatch, installed=False)
    assert all(s.method != "openvino" for s in default_paths(cpu))  # a default run without it is unchanged


def test_missing_openvino_is_one_line_in_the_table(tiny_config, monkeypatch):
    _fake_openvino(monkeypatch, installed=False)
    generator = Generator(tiny_config.generator)
    with pytest.raises(ConfigError, match=r"^openvino is not installed \(pip install openvino\)$"):
        build_path(PathSpec("openvino"), generator, tiny_config, torch.device("cpu"))
    report = run_synth_benchmark(generator, tiny_config, seconds=0.1, rounds=1, progress=False, gemm_size=256,
                                 paths=[PathSpec("torch"), PathSpec("openvino", torch.bfloat16)])
    assert report.results[1].error == OPENVINO_MISSING == "openvino is not installed (pip install openvino)"
    assert "| openvino bf16 | - | - | - | - | - | - | - | not run: openvino is not installed" in report.table()


def test_openvino_refuses_what_it_does_not_run(tiny_config):
    generator = Generator(tiny_config.generator)
    with pytest.raises(ConfigError, match="openvino is benchmarked on CPU"):
        build_path(PathSpec("openvino"), generator, tiny_config, torch.device("cuda"))
    with pytest.raises(ConfigError, match="float32 or bfloat16"):
        build_path(PathSpec("openvino", torch.float16), generator, tiny_config, torch.device("cpu"))


def test_openvino_fp32_matches_eager(tiny_config):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    torch.manual_seed(0)
    generator = Generator(tiny_config.generator)
    cpu = torch.device("cpu")
    mel = torch.randn(2, tiny_config.audio.n_mels, 9)
    with torch.inference_mode():
        eager = build_path(PathSpec("torch"), generator, tiny_config, cpu)(mel)
        run = build_path(PathSpec("openvino"), generator, tiny_config, cpu)
        audio = run(mel)
        shorter = run(mel[:1, :, :5])  # dynamic batch and length
    assert audio.dtype == torch.float32 and audio.shape == eager.shape == (2, 1, 9 * generator.hop_length)
    assert (audio - eager).abs().max() <= 1e-4
    assert shorter.shape == (1, 1, 5 * generator.hop_length)
    assert torch.equal(audio, run(mel))  # a result is not overwritten by the next call

def test_benchmark_checks_and_times_every_path(tiny_config):
    torch.manual_seed(0)
    generator = Generator(tiny_config.generator)
    paths = [PathSpec("torch"), PathSpec("fast"), PathSpec("torch", torch.bfloat16), PathSpec("cuda-graph")]
    report = run_synth_benchmark(generator, tiny_config, seconds=0.3, rounds=2, paths=paths, progress=False,
                                 gemm_size=512)
    eager, fft, bf16, graph = report.results
    assert eager.speedup == 1.0 and eager.max_abs_diff == 0.0 and eager.passed
    assert fft.passed and fft.max_abs_diff < 1e-5 and len(fft.times) == 2
    assert fft.arithmetic_fraction > 0  # reported (tiny models pad channels to 16, so no claim here)
    assert bf16.passed is not None and bf16.mel_l1 > 0  # reduced precision: checked by mel L1
    assert "CUDA" in graph.error  # cannot run here: reported, not fatal
    for result in (eager, fft, bf16):
        assert result.seconds > 0 and result.samples_per_second > 0
        assert result.real_time == pytest.approx(
            report.output_samples / tiny_config.audio.sampling_rate / result.seconds)
        assert result.extra_memory_mb == result.extra_memory_mb  # measured (not NaN)
    assert report.flops_per_sample > 0 and report.gemm_peak_gflops["fp32"] > 0
    table = report.table()
    assert "| fast fp32 |" in table and "not run" in table and "x real time" in table


def test_cli_prints_the_table_and_writes_json(tiny_config, tmp_path, capsys):
    config_file = tmp_path / "tiny.yaml"
    tiny_config.save(config_file)
    out = tmp_path / "bench.json"
    code = main(["bench", "synth", "--config", str(config_file), "--seconds", "0.2", "--rounds", "1",
                 "--paths", "fft", "--quiet", "--json", str(out)])  # an alias of fast
    assert code == 0
    printed = capsys.readouterr().out
    assert "| torch fp32 | 1.00x" in printed and "| fast fp32 |" in printed
    data = json.loads(out.read_text())
    assert [r["name"] for r in data["benchmark"]["results"]] == ["torch fp32", "fast fp32"]


@pytest.mark.parametrize("argv,message", [
    (["--paths", "warp"], "unknown path"),
    (["--device", "cuda:99"], "CUDA device"),
    (["--device", "toaster"], "not a device"),
    (["--quality", "/nonexistent/clip.wav"], "does not exist"),
    (["--model", "universal-v1", "--config", "v3"], "--config goes with"),
    (["--quality", str(sorted(bundled_samples().glob("*.flac"))[0]), "--paths", "fast"], "no bf16 path"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    code = main(["bench", "synth", "--seconds", "0.1", "--rounds", "1", "--quiet", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_quality_check_scores_reduced_precision_against_fp32(tiny_config):
    torch.manual_seed(0)
    generator = Generator(tiny_config.generator)
    clip = sorted(bundled_samples().glob("*.flac"))[0]
    results = quality_check(generator, tiny_config, [clip], [PathSpec("torch", torch.bfloat16)], progress=False)
    (result,) = results
    assert result.clips == 1 and 0 < result.mel_l1 < 1
    assert 1.0 <= result.pesq_wb <= 4.65 and result.max_abs_diff > 0


def test_bench_train_reports_audio_samples_and_mel_frames_per_second(tmp_path, capsys):
    from hifigan.training.bench import bench_train

    config = with_generator_channels(preset("v1"), 16)
    config.training.discriminator_channel_divisor = 16
    config.training.segment_size = 2048
    config.training.batch_size = 2
    config.training.num_workers = 0
    config.training.precision = "32"
    result = bench_train(config, steps=1, warmup=1, accelerator="cpu")
    step_time = result.seconds / result.steps
    assert result.audio_samples_per_s == pytest.approx(2 * 2048 / step_time)  # batch x segment / step time
    assert result.mel_frames_per_s == pytest.approx(result.audio_samples_per_s / 256)
    assert result.segments_per_s == pytest.approx(2 / step_time)  # the training examples
    assert result.audio_seconds_per_s == pytest.approx(result.audio_samples_per_s / 22050)
    text = result.format()
    assert "audio samples/s (batch x segment / step time)" in text
    assert "mel frames/s (audio samples / hop 256)" in text and "training segments/s of 2048 samples" in text
    config_file = tmp_path / "tiny.yaml"
    config.save(config_file)
    assert main(["bench", "train", "--config", str(config_file), "--steps", "1", "--warmup", "1",
                 "--accelerator", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"audio_samples_per_s", "mel_frames_per_s", "segments_per_s"} <= set(data)
    assert "samples_per_s" not in data  # the old, ambiguous name (it counted segments)
