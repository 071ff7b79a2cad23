"""The mel front end: the one log-mel used by training, evaluation and synthesis.

By default it reproduces the authors' `mel_spectrogram` exactly: reflect
padding of (n_fft - hop) / 2 on each side, an STFT with center=False and a
periodic Hann window, magnitude sqrt(re^2 + im^2 + 1e-9), Slaney-normalised mel
filters as librosa builds them, and a natural log clamped at 1e-5. With this
padding a clip of T samples gives exactly T // hop frames.

The dialect fields of `AudioConfig` (audio/frontends.py names the common ones)
describe other toolkits' front ends with the same code path: pre-emphasis,
centred framing (1 + T // hop frames), zero padding, a symmetric window, power
spectra, no epsilon, HTK filters, log10 / decibels, flooring by addition, the
last frame floored, and per-band or decibel-range normalisation.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import librosa
import torch
from torch import nn

from ..config import AudioConfig, dialect_fields

LOG_CLAMP = 1e-5
MAGNITUDE_EPS = 1e-9


def mel_filterbank(
    sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float],
    htk: bool = False, norm: Optional[str] = "slaney",
) -> torch.Tensor:
    """Mel filters [n_mels, n_fft // 2 + 1] as librosa builds them (Slaney by default, as the authors)."""
    basis = librosa.filters.mel(
        sr=sampling_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm
    )
    return torch.from_numpy(basis).float()


class MelSpectrogram(nn.Module):
    """Audio [B, T] or [T] -> log mel [B, n_mels, frames] in the configured dialect.

    frames = T // hop_length (the authors' framing) or 1 + T // hop_length
    (centred framing). The filterbank and window are buffers built once; the
    STFT always runs in float32 (autocast is switched off inside), so the
    module is safe to call in fp16/bf16 training and returns float32.
    `dialect`: any dialect field of `AudioConfig` (frontend, center, log, ...).
    """

    def __init__(
        self,
        sampling_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        n_mels: int = 80,
        fmin: float = 0.0,
        fmax: Optional[float] = 8000.0,
        **dialect: Any,
    ) -> None:
        super().__init__()
        self.config = AudioConfig(sampling_rate=sampling_rate, n_fft=n_fft, hop_length=hop_length,
                                  win_length=win_length, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                  fmax_for_loss=None, **dialect)
        self.config.validate()
        cfg = self.config
        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.padding = n_fft // 2 if cfg.center else (n_fft - hop_length) // 2
        self.register_buffer(
            "mel_basis",
            mel_filterbank(sampling_rate, n_fft, n_mels, fmin, fmax, htk=cfg.mel_scale == "htk", norm=cfg.mel_norm),
            persistent=False,
        )
        self.register_buffer("window", torch.hann_window(win_length, periodic=cfg.periodic_window),
                             persistent=False)
        if cfg.normalize == "per-band":
            self.register_buffer("norm_mean", torch.tensor(cfg.norm_mean, dtype=torch.float32)[:, None],
                                 persistent=False)
            self.register_buffer("norm_scale", torch.tensor(cfg.norm_scale, dtype=torch.float32)[:, None],
                                 persistent=False)

    @classmethod
    def from_config(cls, audio: AudioConfig, for_loss: bool = False) -> "MelSpectrogram":
        """The generator-input mel in the config's dialect, or with `for_loss` the loss mel.

        The loss mel (training loss, validation error, evaluation's mel L1) is
        always the authors' natural-log mel, bounded by `fmax_for_loss`, at the
        model's STFT sizes: the paper's loss weights assume it, whatever dialect
        the generator's input is in.
        """
        if for_loss:
            return cls(sampling_rate=audio.sampling_rate, n_fft=audio.n_fft, hop_length=audio.hop_length,
                       win_length=audio.win_length, n_mels=audio.n_mels, fmin=audio.fmin,
                       fmax=audio.fmax_for_loss)
        dialect = {name: getattr(audio, name) for name in dialect_fields()}
        return cls(sampling_rate=audio.sampling_rate, n_fft=audio.n_fft, hop_length=audio.hop_length,
                   win_length=audio.win_length, n_mels=audio.n_mels, fmin=audio.fmin, fmax=audio.fmax,
                   **dialect)

    @property
    def min_samples(self) -> int:
        """Shortest input the padding accepts (it yields at least one frame too)."""
        return max(self.padding + 1, self.hop_length)

    def frames(self, samples: int) -> int:
        """Frames this front end makes of `samples` samples."""
        return self.config.frames(samples)

    def _check(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        elif audio.dim() == 3 and audio.shape[1] == 1:
            audio = audio.squeeze(1)
        if audio.dim() != 2:
            raise ValueError(
                f"MelSpectrogram expects audio shaped [T], [B, T] or [B, 1, T], got {tuple(audio.shape)}"
            )
        if audio.shape[-1] < self.min_samples:
            raise ValueError(
                f"audio of {audio.shape[-1]} samples is too short for the mel front end: "
                f"it needs at least {self.min_samples} samples (n_fft={self.n_fft}, hop={self.hop_length})"
            )
        return audio

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude (or power) [B, n_fft // 2 + 1, frames] with the dialect's framing."""
        audio = self._check(audio)
        cfg = self.config
        with torch.autocast(device_type=audio.device.type, enabled=False):
            audio = audio.float()
            if cfg.preemphasis:
                audio = torch.cat([audio[:, :1], audio[:, 1:] - cfg.preemphasis * audio[:, :-1]], dim=1)
            padded = torch.nn.functional.pad(
                audio.unsqueeze(1), (self.padding, self.padding), mode=cfg.pad_mode
            ).squeeze(1)
            spec = torch.stft(
                padded,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=False,
                normalized=False,
                onesided=True,
                return_complex=True,
            )
            power = spec.real.square() + spec.imag.square()
            if cfg.magnitude_eps:
                power = power + cfg.magnitude_eps
            return power if cfg.power == 2.0 else torch.sqrt(power)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        magnitude = self.magnitude(audio)
        cfg = self.config
        with torch.autocast(device_type=magnitude.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis, magnitude)
            if cfg.log_floor_mode == "clamp":
                mel = torch.clamp(mel, min=cfg.log_floor)
            else:
                mel = mel + cfg.log_floor
            mel = torch.log(mel) if cfg.log == "ln" else torch.log10(mel)
            if cfg.log_gain != 1.0:
                mel = mel * cfg.log_gain
            mel = normalize_mel(mel, cfg, self)
            if cfg.last_frame_value is not None:
                mel[..., -1] = cfg.last_frame_value
            return mel


def log_floor_value(audio: AudioConfig) -> float:
    """The log mel of silence in this dialect, before normalisation."""
    log = math.log if audio.log == "ln" else math.log10
    return audio.log_gain * log(audio.log_floor)


def normalize_mel(mel: torch.Tensor, audio: AudioConfig, module: Optional[MelSpectrogram] = None) -> torch.Tensor:
    """The dialect's normalisation of a log mel [..., n_mels, frames] (identity when there is none)."""
    if audio.normalize == "per-band":
        if module is not None:
            mean, scale = module.norm_mean, module.norm_scale
        else:
            mean = torch.tensor(audio.norm_mean, dtype=mel.dtype, device=mel.device)[:, None]
            scale = torch.tensor(audio.norm_scale, dtype=mel.dtype, device=mel.device)[:, None]
        return (mel - mean) / scale
    if audio.normalize == "db-range":
        mel = (mel - audio.ref_level_db - audio.min_level_db) / -audio.min_level_db
        if audio.symmetric_norm:
            mel = 2 * audio.max_norm * mel - audio.max_norm
            low = -audio.max_norm
        else:
            mel = audio.max_norm * mel
            low = 0.0
        if audio.clip_norm:
            mel = torch.clamp(mel, low, audio.max_norm)
        return mel
    return mel



def linear_mel(mel: torch.Tensor, audio: AudioConfig) -> torch.Tensor:
    """Undo the dialect's normalisation and log: the linear mel magnitudes a log mel stands for.

    Clipped values (Coqui's clip_norm) come back as the clip level, and floored
    ones as the floor; everything else is recovered to float rounding. Used to
    compare mels of different front ends, and mels across CPUs, where the log
    of the quietest bins carries most of the rounding.
    """
    mel = mel.float()
    if audio.normalize == "per-band":
        mean = torch.tensor(audio.norm_mean, dtype=mel.dtype, device=mel.device)[:, None]
        scale = torch.tensor(audio.norm_scale, dtype=mel.dtype, device=mel.device)[:, None]
        mel = mel * scale + mean
    elif audio.normalize == "db-range":
        span = 2 * audio.max_norm if audio.symmetric_norm else audio.max_norm
        offset = audio.max_norm if audio.symmetric_norm else 0.0
        mel = (mel + offset) / span * -audio.min_level_db + audio.min_level_db + audio.ref_level_db
    mel = mel / audio.log_gain
    return torch.exp(mel) if audio.log == "ln" else torch.pow(10.0, mel)
