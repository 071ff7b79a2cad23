"""Synthesis speed benchmark: every synthesis path side by side, each checked against eager fp32.

`run_synth_benchmark` times the eager float32 generator (path "torch": weight
norm folded, inference mode, the default thread count) and each faster path
from `fast.optimize` (plus "onnx", ONNX Runtime) on the same mel batch. Paths
are named as everywhere else (`fast.PATHS`, aliases accepted), with a dtype, plus the
benchmark-only "openvino" (OpenVINO on our ONNX export: a runtime a user might pick
instead, timed beside ours; not a synthesis backend). Timings are
interleaved: every round runs each path once, in a rotating order, so a noisy
machine slows all paths alike; the speed-up of a path is the median over rounds
of (eager time / path time) within the round. Reported per path:

- samples/s: output samples (batch x length) per wall-clock second, median call;
- x real time: seconds of audio produced per second of wall clock;
- effective GFLOP/s: the direct-convolution FLOPs of the generator per second,
  next to the measured matrix-multiply peak (faster algorithms do fewer
  FLOPs, so their effective rate can exceed the peak);
- extra memory: CPU: peak resident set size during one call minus the RSS just
  before it (VmHWM reset through /proc/self/clear_refs, heap trimmed first;
  falls back to getrusage's ru_maxrss growth where that is not possible);
  CUDA: torch.cuda.max_memory_allocated during one call minus the allocation before it;
- the check: exact paths, max |audio - eager| <= 1e-4; reduced precision, the
  mel L1 distance to the eager audio (`evaluation.metrics.mel_l1`) <= 0.1.
"""
from __future__ import annotations

import ctypes
import gc
import importlib.util
import logging
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..config import HiFiGANConfig
from ..errors import ConfigError, first_line
from ..models import Generator
from . import fast_native
from .fast import PATHS, optimize, path_name

EXACT_TOLERANCE = 1e-4  # max abs difference to eager fp32 audio for exact paths
MEL_L1_TOLERANCE = 0.1  # mel L1 to eager fp32 audio for reduced-precision paths
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
# what the benchmark builds and times: the concrete synthesis paths, and OpenVINO (benchmark only)
BENCH_PATHS = tuple(p for p in PATHS if p != "auto") + ("openvino",)
OPENVINO_MISSING = "openvino is not installed (pip install openvino)"
OPENVINO_PRECISION = {torch.float32: "f32", torch.bfloat16: "bf16"}  # the CPU plugin's INFERENCE_PRECISION_HINT


# the kernels a "fast" path can be pinned to: bf16 (AMX or the FFT kernel), fp32 (a native build or PyTorch)
FAST_KERNELS = {torch.bfloat16: ("amx", "fft"), torch.float32: tuple(fast_native.TARGETS) + ("pytorch",)}


@dataclass(frozen=True)
class PathSpec:
    """One way of running the generator: a path of `BENCH_PATHS` (an alias is stored as its path) and a dtype.

    `kernel` pins "fast" to one implementation (None: whatever runs here): in bfloat16
    "amx" or "fft"; in float32 a native build of `fast_native.TARGETS` ("avx2"...) or
    "pytorch" (the same algorithms as PyTorch products, what runs without a C compiler).
    """

    method: str
    dtype: torch.dtype = torch.float32
    kernel: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", path_name(self.method, BENCH_PATHS, "path"))
        if self.kernel is None:
            return
        allowed = FAST_KERNELS.get(self.dtype, ()) if self.method == "fast" else ()
        if self.kernel not in allowed:
            where = f"path {self.method}-{DTYPE_NAMES[self.dtype]}"
            if not allowed:
                raise ConfigError(f"{where} has no kernel to choose (':' goes with fast and fast-bf16)")
            raise ConfigError(f"{where}: the kernel after ':' is one of {', '.join(allowed)}, not {self.kernel!r}")

    @property
    def name(self) -> str:
        return f"{self.method} {DTYPE_NAMES[self.dtype]}" + (f" {self.kernel}" if self.kernel else "")

    @property
    def options(self) -> dict:
        """What `optimize` is given besides method and dtype."""
        if self.kernel is None:
            return {}
        if self.dtype == torch.bfloat16:
            return {"amx": self.kernel == "amx"}
        return {"native": False if self.kernel == "pytorch" else self.kernel}

    @property
    def exact(self) -> bool:
        return self.dtype == torch.float32


def default_paths(device: torch.device) -> list[PathSpec]:
    """Eager fp32 first (the baseline), then every faster path we offer on `device`."""
    f32, f16, b16 = torch.float32, torch.float16, torch.bfloat16
    if device.type == "cuda":
        return [PathSpec("torch", f32), PathSpec("compile", f32), PathSpec("torch", f16),
                PathSpec("cuda-graph", f16), PathSpec("compile", f16), PathSpec("torch", b16),
                PathSpec("cuda-graph", b16)]
    fast_b16 = [PathSpec("fast", b16)]
    if fast_native.amx_available():  # both bf16 implementations, side by side
        fast_b16 = [PathSpec("fast", b16, kernel="amx")] + ([PathSpec("fast", b16, kernel="fft")]
                                                        if fast_native.bf16_available() else [])
    openvino = openvino_available()
    return ([PathSpec("torch", f32), PathSpec("fast", f32), PathSpec("onnx", f32)]
            + ([PathSpec("openvino", f32)] if openvino else [])
            + [PathSpec("compile", f32), PathSpec("torch", b16)] + fast_b16
            + ([PathSpec("openvino", b16)] if openvino else []) + [PathSpec("compile", b16)])


def openvino_available() -> bool:
    """Whether `openvino` can be imported (without importing it: default paths stay cheap)."""
    return importlib.util.find_spec("openvino") is not None


def parse_paths(text: str, device: torch.device) -> list[PathSpec]:
    """'fast,torch-bf16,fast-bf16:fft,fast:avx2' -> specs (dtype suffix -fp32/-bf16/-fp16, default fp32;
    "fast" takes a kernel after ':', see `PathSpec`); torch fp32 is always first."""
    names = {v: k for k, v in DTYPE_NAMES.items()}
    specs = [PathSpec("torch", torch.float32)]
    for entry in filter(None, (part.strip() for part in text.split(","))):
        item, _, kernel = entry.partition(":")
        method, _, dtype = item.rpartition("-") if item.rsplit("-", 1)[-1] in names else (item, "", "fp32")
        try:
            spec = PathSpec(method, names[dtype or "fp32"], kernel or None)
        except ConfigError as exc:
            if kernel:
                raise
            raise ConfigError(f"{exc}, optionally with -bf16 or -fp16") from None
        if spec not in specs:
            specs.append(spec)
    return specs


@dataclass
class PathResult:
    name: str
    exact: bool
    dtype: str = "fp32"
    times: list[float] = field(default_factory=list)
    setup_seconds: float = float("nan")
    speedup: float = float("nan")
    seconds: float = float("nan")
    samples_per_second: float = float("nan")
    real_time: float = float("nan")  # audio seconds per wall-clock second ("x real time")
    effective_gflops: float = float("nan")
    extra_memory_mb: float = float("nan")
    arithmetic_gflops: float = float("nan")  # FLOPs the path really does per second, where it says
    arithmetic_fraction: float = float("nan")  # its FLOPs / the direct-convolution FLOPs
    max_abs_diff: float = float("nan")
    mel_l1: float = float("nan")
    passed: Optional[bool] = None
    error: Optional[str] = None  # why the path could not run here

    @property
    def check(self) -> str:
        if self.error:
            return "-"
        if self.exact:
            return f"max abs diff {self.max_abs_diff:.1e} {'ok' if self.passed else 'FAIL'}"
        return f"mel L1 {self.mel_l1:.4f} {'ok' if self.passed else 'FAIL'}"


@dataclass
class SynthBenchmark:
    config: str
    weights: str
    device: str
    machine: str
    threads: int
    batch_size: int
    seconds: float
    frames: int
    sampling_rate: int
    hop_length: int
    flops_per_sample: float
    gemm_peak_gflops: dict[str, float]
    memory_method: str
    rounds: int
    results: list[PathResult]

    @property
    def output_samples(self) -> int:
        return self.batch_size * self.frames * self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        peaks = ", ".join(f"{k} {v:.0f}" for k, v in self.gemm_peak_gflops.items())
        lines = [
            f"hifigan bench synth: {self.config} ({self.weights}), {self.device}, {self.threads} threads, "
            f"batch {self.batch_size} x {self.seconds:g} s ({self.frames} frames, {self.sampling_rate} Hz)",
            f"machine: {self.machine}",
            f"generator: {self.flops_per_sample / 1e6:.2f} MFLOP per output sample (direct convolution); "
            f"measured GEMM peak (GFLOP/s): {peaks}",
            f"{self.rounds} interleaved rounds; time = median call, best = fastest call; speed-up = median "
            f"per-round ratio to torch fp32 (eager); samples/s and x real time (audio seconds per wall second) "
            f"from the median; memory: {self.memory_method}",
            "",
            "| path | speed-up | time (s) | best (s) | samples/s | x real time | eff. GFLOP/s (% of peak) "
            "| extra memory (MB) | check vs torch fp32 | setup (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in self.results:
            if r.error:
                lines.append(f"| {r.name} | - | - | - | - | - | - | - | not run: {r.error} | - |")
                continue
            lines.append(
                f"| {r.name} | {r.speedup:.2f}x | {r.seconds:.3f} | {min(r.times):.3f} | {r.samples_per_second:,.0f} | "
                f"{r.real_time:.1f} | {r.effective_gflops:.0f} ({self._percent(r.effective_gflops, r.dtype)}) | "
                f"{r.extra_memory_mb:.0f} | {r.check} | {r.setup_seconds:.1f} |"
            )
        for r in self.results:
            if not r.error and r.arithmetic_fraction == r.arithmetic_fraction:
                lines.append(
                    f"\n{r.name} does {r.arithmetic_fraction:.0%} of the direct-convolution FLOPs; its real "
                    f"arithmetic rate is {r.arithmetic_gflops:.0f} GFLOP/s "
                    f"({self._percent(r.arithmetic_gflops, r.dtype)} of the {r.dtype} GEMM peak).")
        return "\n".join(lines)

    def _percent(self, gflops: float, dtype: str) -> str:
        peak = self.gemm_peak_gflops.get(dtype)
        return f"{gflops / peak:.0%}" if peak else "-"


# ---- inputs and counts ------------------------------------------------------------------


def benchmark_mel(config: HiFiGANConfig, seconds: float, batch_size: int) -> torch.Tensor:
    """A real-speech mel batch [B, n_mels, frames] of `seconds`: the bundled clips, tiled.

    Each batch item starts at a different place, so items differ.
    """
    from ..audio import MelSpectrogram, load_audio
    from .synthesis import bundled_samples

    rate = config.audio.sampling_rate
    clips = [load_audio(path, rate).samples for path in sorted(bundled_samples().glob("*.flac"))]
    speech = np.concatenate(clips).astype(np.float32)
    frames = max(1, round(seconds * rate / config.audio.hop_length))
    need = frames * config.audio.hop_length
    reps = -(-(need + len(speech)) // len(speech))
    tiled = np.tile(speech, reps + 1)
    step = len(speech) // max(1, batch_size)
    audio = torch.from_numpy(np.stack([tiled[b * step:b * step + need] for b in range(batch_size)]))
    mel = MelSpectrogram.from_config(config.audio)
    with torch.inference_mode():
        out = mel(audio)
    return out[..., :frames].contiguous()


def generator_flops(generator: Generator, frames: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one direct-convolution forward pass for one mel of `frames`."""
    total, length = 0.0, frames
    cfg = generator.config
    c = cfg.upsample_initial_channel
    total += 2 * generator.n_mels * c * 7 * length  # conv_pre
    for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
        c_in, c_out = c // 2 ** i, c // 2 ** (i + 1)
        total += 2 * c_in * c_out * kernel * length  # transposed conv: every input meets every tap
        length *= rate
        convs_per_block = 2 if str(cfg.resblock) == "1" else 1
        for k, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
            total += 2 * c_out * c_out * k * length * convs_per_block * len(dilations)
    total += 2 * (c // 2 ** len(cfg.upsample_rates)) * 7 * length  # conv_post
    return total


def gemm_peak_gflops(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """Best-of-`repeats` GFLOP/s of one size x size matrix product (the peak the generator is compared with)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    with torch.inference_mode():
        torch.mm(a, b)
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = []
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text]
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs" + (f" ({', '.join(flags)})" if flags else "")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- memory -----------------------------------------------------------------------------


class _CPUMemory:
    """Peak RSS growth over one call: VmHWM reset via /proc/self/clear_refs, else ru_maxrss growth."""

    def __init__(self) -> None:
        self.resettable = self._reset()
        self.method = ("peak RSS - RSS before one call (Linux VmHWM, reset per call; heap trimmed first)"
                       if self.resettable else "growth of the process peak RSS (getrusage ru_maxrss) over one call")

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _status(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return float(line.split()[1]) / 1024  # kB -> MB
        return float("nan")

    @staticmethod
    def _trim() -> None:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def measure(self, call: Callable[[], object]) -> float:
        self._trim()
        if self.resettable and self._reset():
            before = self._status("VmRSS")
            call()
            return self._status("VmHWM") - before
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
        call()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
        return after - before


def _cuda_memory(device: torch.device, call: Callable[[], object]) -> float:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    call()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


# ---- building paths ---------------------------------------------------------------------


def build_path(spec: PathSpec, generator: Generator, config: HiFiGANConfig,
               device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable mel (on `device`) -> float32 audio [B, 1, T * hop] for `spec`."""
    if spec.method == "openvino":
        return _openvino_runner(spec, generator, config, device)
    if spec.method == "onnx":
        if device.type != "cpu" or spec.dtype != torch.float32:
            raise ConfigError("onnx (onnxruntime) is benchmarked on CPU in float32")
        from .export import INPUT_NAME, onnx_session

        session = onnx_session(_onnx_bytes(generator, config), threads=torch.get_num_threads())

        def run_onnx(mel: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {INPUT_NAME: mel.cpu().numpy()})[0])

        return run_onnx
    return optimize(generator, dtype=spec.dtype, device=device, method=spec.method, **spec.options)


def _onnx_bytes(generator: Generator, config: HiFiGANConfig) -> bytes:
    """Our ONNX export (`export.onnx_model_bytes`), with the exporter's log muted."""
    from .export import onnx_model_bytes

    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # the exporter's notes on torchvision ops are noise here
    try:
        return onnx_model_bytes(generator, config)
    finally:
        exporter_log.setLevel(level)


def _openvino_runner(spec: PathSpec, generator: Generator, config: HiFiGANConfig,
                     device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """OpenVINO's CPU plugin on our ONNX export, its precision set explicitly (on AMX CPUs it defaults to bf16)."""
    if device.type != "cpu" or spec.dtype not in OPENVINO_PRECISION:
        raise ConfigError("openvino is benchmarked on CPU in float32 or bfloat16")
    try:
        import openvino
    except ImportError:
        raise ConfigError(OPENVINO_MISSING) from None
    precision = OPENVINO_PRECISION[spec.dtype]
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(_onnx_bytes(generator, config)), "CPU", {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "PERFORMANCE_HINT": "LATENCY",
    })
    runs = compiled.get_property("INFERENCE_PRECISION_HINT")  # the plugin falls back silently where it must
    if runs != getattr(openvino.Type, precision):
        raise ConfigError(f"openvino runs {runs.get_type_name()} on this CPU, not {precision}")
    request = compiled.create_infer_request()

    def run_openvino(mel: torch.Tensor) -> torch.Tensor:
        # share_outputs=False (the default) copies the output, so the next call does not overwrite it
        outputs = request.infer({0: mel.detach().cpu().float().numpy()}, share_outputs=False)
        return torch.from_numpy(outputs[compiled.output(0)])

    return run_openvino


def _first_line(exc: BaseException) -> str:
    return first_line(exc)[:160]  # a table cell


# ---- the benchmark ------------------------------------------------------------------------


def run_synth_benchmark(
    generator: Generator,
    config: HiFiGANConfig,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    seconds: float = 10.0,
    rounds: int = 5,
    paths: Optional[Sequence[PathSpec]] = None,
    weights: str = "random weights",
    mel: Optional[torch.Tensor] = None,
    progress: bool = True,
    gemm_size: int = 2048,
) -> SynthBenchmark:
    """Build every path, check it against eager fp32, then time all paths in interleaved rounds.

    A path that cannot run here (no CUDA, no onnxruntime, compiler missing...)
    is reported with the reason instead of failing the benchmark.
    """
    from tqdm import tqdm

    from ..evaluation.metrics import mel_l1

    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device}: no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {device}: there are only {torch.cuda.device_count()} CUDA devices")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device}: the benchmark runs on cpu or cuda")
    if batch_size < 1 or seconds <= 0 or rounds < 1:
        raise ConfigError("batch size, seconds and rounds must be positive")
    paths = list(paths or default_paths(device))
    if paths[0] != PathSpec("torch", torch.float32):
        paths.insert(0, PathSpec("torch", torch.float32))
    if mel is None:
        mel = benchmark_mel(config, seconds, batch_size)
    mel = mel.to(device)
    frames = mel.shape[-1]
    hop = generator.hop_length
    rate = config.audio.sampling_rate
    samples = mel.shape[0] * frames * hop
    flops = generator_flops(generator, frames) * mel.shape[0]
    peaks = {"fp32": gemm_peak_gflops(device, torch.float32, gemm_size)}
    for dtype in sorted({p.dtype for p in paths if p.dtype != torch.float32}, key=str):
        peaks[DTYPE_NAMES[dtype]] = gemm_peak_gflops(device, dtype, gemm_size)

    memory = _CPUMemory() if device.type == "cpu" else None
    results, runners = [], []
    bar = tqdm(total=len(paths) + rounds, desc="bench synth", disable=not progress, unit="step")
    reference: Optional[torch.Tensor] = None
    for spec in paths:
        result = PathResult(spec.name, spec.exact, DTYPE_NAMES[spec.dtype])
        bar.set_postfix_str(f"building {spec.name}")
        try:
            start = time.perf_counter()
            runner = build_path(spec, generator, config, device)
            with torch.inference_mode():
                audio = runner(mel)  # warm-up: compiles, allocates, captures
                _sync(device)
            result.setup_seconds = time.perf_counter() - start
            audio = audio.float().cpu()
            if reference is None:
                reference = audio
            result.max_abs_diff = float((audio - reference).abs().max())
            if spec.exact:
                result.passed = result.max_abs_diff <= EXACT_TOLERANCE
            else:
                result.mel_l1 = float(np.mean([
                    mel_l1(reference[b, 0].numpy(), audio[b, 0].numpy(), config.audio)
                    for b in range(audio.shape[0])
                ]))
                result.passed = result.mel_l1 <= MEL_L1_TOLERANCE
            with torch.inference_mode():
                if memory is not None:
                    release = getattr(runner, "release_buffers", None)
                    if release:
                        release()
                    result.extra_memory_mb = memory.measure(lambda: runner(mel))
                else:
                    result.extra_memory_mb = _cuda_memory(device, lambda: runner(mel))
        except Exception as exc:  # noqa: BLE001 - an optional path that fails is reported in the table
            if not results:
                raise  # the eager baseline must run
            result.error = _first_line(exc)
            runner = None
        results.append(result)
        runners.append(runner)
        bar.update()

    for result, runner in zip(results, runners):
        count = getattr(runner, "arithmetic_flops", None)
        if count is not None:
            result.arithmetic_fraction = count(mel.shape[0], frames) / flops
    live = [(r, run) for r, run in zip(results, runners) if run is not None]
    with torch.inference_mode():
        for round_index in range(rounds):
            bar.set_postfix_str(f"round {round_index + 1}/{rounds}")
            shift = round_index % len(live)
            for result, runner in live[shift:] + live[:shift]:
                _sync(device)
                start = time.perf_counter()
                runner(mel)
                _sync(device)
                result.times.append(time.perf_counter() - start)
            bar.update()
    bar.close()

    baseline = results[0].times
    for result, _ in live:
        result.seconds = statistics.median(result.times)
        result.speedup = statistics.median(b / t for b, t in zip(baseline, result.times))
        result.samples_per_second = samples / result.seconds
        result.real_time = samples / rate / result.seconds
        result.effective_gflops = flops / result.seconds / 1e9
        result.arithmetic_gflops = result.effective_gflops * result.arithmetic_fraction
    threads = torch.get_num_threads()
    return SynthBenchmark(
        config=config.name, weights=weights, device=str(device), machine=machine_name(device),
        threads=threads, batch_size=mel.shape[0], seconds=frames * hop / rate, frames=frames,
        sampling_rate=rate, hop_length=hop, flops_per_sample=flops / samples, gemm_peak_gflops=peaks,
        memory_method=memory.method if memory else "torch.cuda.max_memory_allocated - allocated before one call",
        rounds=rounds, results=results,
    )


# ---- quality of reduced precision ---------------------------------------------------------


@dataclass
class QualityResult:
    path: str
    clips: int
    mel_l1: float  # mean over clips, vs the eager fp32 audio
    pesq_wb: float  # mean wide-band PESQ at 16 kHz, reference = the eager fp32 audio
    pesq_wb_min: float
    max_abs_diff: float


def quality_check(generator: Generator, config: HiFiGANConfig, audio_paths: Sequence[str | Path],
                  paths: Sequence[PathSpec], progress: bool = True) -> list[QualityResult]:
    """Copy synthesis of real clips with each path vs eager fp32: mel L1 and wide-band PESQ.

    PESQ takes the eager fp32 output as the reference, so 4.64 means
    indistinguishable from fp32 (not from the original recording).
    """
    from tqdm import tqdm

    from ..audio import MelSpectrogram, load_audio
    from ..evaluation.metrics import mel_l1, pesq_wb

    if not audio_paths:
        raise ConfigError("the quality check needs at least one audio file")
    rate = config.audio.sampling_rate
    front = MelSpectrogram.from_config(config.audio)
    eager = build_path(PathSpec("torch"), generator, config, torch.device("cpu"))
    runners = [(spec, build_path(spec, generator, config, torch.device("cpu"))) for spec in paths]
    scores: dict[str, list[tuple[float, float, float]]] = {spec.name: [] for spec in paths}
    for path in tqdm(list(audio_paths), desc="quality", disable=not progress, unit="clip"):
        audio = load_audio(path, rate).samples
        with torch.inference_mode():
            mel = front(torch.from_numpy(np.asarray(audio, dtype=np.float32)))
            mel = mel if mel.dim() == 3 else mel[None]
            reference = eager(mel)[0, 0].numpy()
            for spec, runner in runners:
                out = runner(mel)[0, 0].numpy()
                scores[spec.name].append((mel_l1(reference, out, config.audio), pesq_wb(reference, out, rate),
                                          float(np.abs(out - reference).max())))
    results = []
    for spec in paths:
        values = np.array(scores[spec.name])
        results.append(QualityResult(spec.name, len(values), float(values[:, 0].mean()), float(values[:, 1].mean()),
                                     float(values[:, 1].min()), float(values[:, 2].max())))
    return results


def quality_table(results: Sequence[QualityResult]) -> str:
    lines = ["| path | clips | mel L1 vs fp32 | PESQ-wb vs fp32 (mean) | PESQ-wb (min) | max abs diff |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.path} | {r.clips} | {r.mel_l1:.4f} | {r.pesq_wb:.3f} | {r.pesq_wb_min:.3f} | "
                     f"{r.max_abs_diff:.2e} |")
    return "\n".join(lines)
