"""`bench_train()`: training throughput and peak memory of a config and precision.

Throughput is reported in three units, each named: audio samples per second
(batch x segment_size per step time: the waveform samples trained on), mel
frames per second (audio samples / hop: the unit of NVIDIA's training
tables) and training segments per second (the examples of the batch), with
seconds of audio per second beside them.

It runs the real training step (the LightningModule, Lightning's precision
plugin, one process) on synthetic batches held in memory, so data loading
is not measured; the first `warmup` steps (allocator, cuDNN autotuning) are
not timed. On CUDA the peak is `torch.cuda.max_memory_allocated` after warm-up;
on CPU the process's peak resident memory.
"""
from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ..audio import MelSpectrogram
from ..data import collate
from ..config import HiFiGANConfig
from ..errors import ConfigError
from .module import HiFiGANModule
from .precision import set_tf32
from .run import LIGHTNING_PRECISION, StopAtStep, apply_overrides, check_devices
from .recipes import load_recipe


@dataclass
class TrainBenchResult:
    config: str
    device: str
    precision: str
    batch_size: int  # micro-batch on the device
    accumulation: int  # micro-batches per optimiser step
    segment_size: int
    hop_length: int
    steps: int
    seconds: float
    audio_samples_per_s: float  # waveform samples trained on per second: batch x segment_size / step time
    mel_frames_per_s: float  # audio samples / hop: the unit of NVIDIA's training throughput tables
    segments_per_s: float  # training examples (segments of segment_size samples) per second
    audio_seconds_per_s: float  # seconds of audio trained on per second
    peak_memory_mb: float
    memory_kind: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        return "\n".join([
            f"config {self.config}, {self.device}, precision {self.precision}, batch {self.batch_size} x "
            f"{self.segment_size} samples" + (f" x {self.accumulation} accumulated" if self.accumulation > 1 else ""),
            f"{self.steps} timed steps in {self.seconds:.2f} s: {self.seconds / self.steps:.3f} s/step",
            f"throughput: {self.audio_samples_per_s:,.0f} audio samples/s (batch x segment / step time), "
            f"{self.mel_frames_per_s:,.0f} mel frames/s (audio samples / hop {self.hop_length})",
            f"            {self.segments_per_s:.2f} training segments/s of {self.segment_size} samples, "
            f"{self.audio_seconds_per_s:.2f} s of audio/s",
            f"peak memory: {self.peak_memory_mb:.0f} MB ({self.memory_kind})",
        ])


class _SameBatch(Dataset):
    """`length` copies of a few fixed random clips (in the batch contract)."""

    def __init__(self, config: HiFiGANConfig, clips: int, length: int) -> None:
        generator = torch.Generator().manual_seed(0)
        segment = config.training.segment_size
        audio = 0.3 * torch.randn(clips, segment, generator=generator).clamp(-1, 1)
        with torch.no_grad():
            self.mel = MelSpectrogram.from_config(config.audio)(audio)
            self.mel_loss = MelSpectrogram.from_config(config.audio, for_loss=True)(audio)
        self.audio = audio
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = index % self.audio.shape[0]
        return {"mel": self.mel[i], "audio": self.audio[i], "mel_loss": self.mel_loss[i], "name": f"clip{i}"}


class _Timer(pl.Callback):
    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total
        self.start: Optional[float] = None
        self.end: Optional[float] = None
        self.peak_mb = 0.0

    def _sync(self, module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not module.step_completed:
            return
        if module.step_count == self.warmup:
            self._sync(module)
            if module.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(module.device)
            self.start = time.perf_counter()
        elif module.step_count == self.total:
            self._sync(module)
            self.end = time.perf_counter()
            if module.device.type == "cuda":
                self.peak_mb = torch.cuda.max_memory_allocated(module.device) / 2**20


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def bench_train(
    config: Any = "v1",
    *,
    overrides: Optional[dict[str, Any]] = None,
    batch_size: Optional[int] = None,
    steps: int = 10,
    warmup: int = 3,
    accelerator: str = "auto",
) -> TrainBenchResult:
    """Time `steps` optimiser steps after `warmup` ones on one device.

    `batch_size`: the micro-batch the device processes at once (default: what one
    device of a one-device run of the recipe takes: batch_size / accumulation).
    """
    if steps < 1 or warmup < 1:
        raise ConfigError("--steps and --warmup must be at least 1")
    resolved = apply_overrides(load_recipe(config), overrides or {})
    t = resolved.training
    k = t.accumulate_grad_batches
    micro = batch_size if batch_size is not None else t.batch_size // k
    if micro < 1:
        raise ConfigError(f"batch size must be at least 1, got {micro}")
    resolved = apply_overrides(resolved, {"training.batch_size": micro * k,
                                          "training.log_every_n_steps": 10**9})
    check_devices(accelerator, 1, 1)
    set_tf32(t.tf32)
    pl.seed_everything(t.seed, verbose=False)
    total = warmup + steps
    data = _SameBatch(resolved, clips=min(micro, 8), length=total * micro * k)
    loader = DataLoader(data, batch_size=micro, shuffle=False, drop_last=True, num_workers=0,
                        collate_fn=collate)
    timer = _Timer(warmup, total)
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, precision=LIGHTNING_PRECISION[t.precision], max_epochs=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[StopAtStep(total), timer],
    )
    module = HiFiGANModule(resolved)
    trainer.fit(module, train_dataloaders=loader)
    if timer.start is None or timer.end is None:
        raise RuntimeError("the benchmark did not reach its last step")
    seconds = timer.end - timer.start
    segments = steps * micro * k / seconds  # training examples per second
    audio_samples = segments * t.segment_size
    device = str(module.device)
    if module.device.type == "cuda":
        device = f"{device} ({torch.cuda.get_device_name(module.device)})"
        peak, kind = timer.peak_mb, "CUDA max_memory_allocated"
    else:
        peak, kind = _peak_rss_mb(), "process peak RSS"
    return TrainBenchResult(
        config=resolved.name, device=device, precision=t.precision, batch_size=micro, accumulation=k,
        segment_size=t.segment_size, hop_length=resolved.audio.hop_length, steps=steps, seconds=seconds,
        audio_samples_per_s=audio_samples, mel_frames_per_s=audio_samples / resolved.audio.hop_length,
        segments_per_s=segments, audio_seconds_per_s=audio_samples / resolved.audio.sampling_rate,
        peak_memory_mb=peak, memory_kind=kind,
    )

