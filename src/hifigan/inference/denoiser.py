"""Bias denoiser, as in NVIDIA's HiFi-GAN (and WaveGlow) inference.

A trained generator adds a faint, fixed "bias" noise (hiss, tonal artefacts)
to everything it produces. Its magnitude spectrum is estimated once from the
generator's output for a constant mel; at synthesis time `strength` times
that spectrum is subtracted from every STFT frame's magnitude, clamped at 0,
and the audio is rebuilt with the original phase.

As NVIDIA: STFT of n_fft = the model's n_fft, hop n_fft / 4, the model's
window length, and a bias mel of 88 frames of zeros (`mode="zeros"`; the log-
mel value 0). `mode="silence"` uses log(1e-5), the front end's floor. One
deliberate difference: NVIDIA keeps the first STFT frame of the bias clip,
which sits on the clip's padded edge; we average all its frames, a steadier
estimate of the same spectrum.
"""
from __future__ import annotations

import math
from typing import Callable, Literal

import torch

from ..audio.mel import LOG_CLAMP
from ..config import AudioConfig

BIAS_FRAMES = 88
BiasMode = Literal["zeros", "silence"]
BIAS_MEL_VALUE = {"zeros": 0.0, "silence": math.log(LOG_CLAMP)}


class Denoiser:
    """Subtracts `strength` x the generator's bias spectrum from audio [T] or [B, T]."""

    def __init__(self, bias_spectrum: torch.Tensor, n_fft: int, win_length: int) -> None:
        self.n_fft = n_fft
        self.hop_length = n_fft // 4
        self.win_length = win_length
        self.bias_spectrum = bias_spectrum.float()  # [n_fft // 2 + 1]
        self.window = torch.hann_window(win_length, device=bias_spectrum.device)

    @classmethod
    def from_generator(
        cls,
        generate: Callable[[torch.Tensor], torch.Tensor],
        audio: AudioConfig,
        device: torch.device,
        mode: BiasMode = "zeros",
    ) -> "Denoiser":
        """Estimate the bias from `generate(mel [1, n_mels, 88]) -> audio [1, T]`."""
        if mode not in BIAS_MEL_VALUE:
            raise ValueError(f"denoiser mode must be one of {sorted(BIAS_MEL_VALUE)}, got {mode!r}")
        mel = torch.full((1, audio.n_mels, BIAS_FRAMES), BIAS_MEL_VALUE[mode], device=device)
        bias_audio = generate(mel).float().reshape(-1)
        window = torch.hann_window(audio.win_length, device=device)
        spec = torch.stft(bias_audio, audio.n_fft, audio.n_fft // 4, audio.win_length, window,
                          center=True, pad_mode="reflect", return_complex=True)
        return cls(spec.abs().mean(dim=-1), audio.n_fft, audio.win_length)

    @property
    def context(self) -> int:
        """Samples on each side that shape one output sample (for exact streaming)."""
        return self.n_fft

    def __call__(self, audio: torch.Tensor, strength: float) -> torch.Tensor:
        if strength == 0:
            return audio
        squeeze = audio.dim() == 1
        batch = audio.unsqueeze(0) if squeeze else audio
        length = batch.shape[-1]
        # Reflect padding needs more samples than half a frame; tiny clips use zeros.
        pad_mode = "reflect" if length > self.n_fft // 2 else "constant"
        spec = torch.stft(batch.float(), self.n_fft, self.hop_length, self.win_length,
                          self.window.to(batch.device), center=True, pad_mode=pad_mode,
                          return_complex=True)
        bias = self.bias_spectrum.to(batch.device)[None, :, None]
        magnitude = torch.clamp(spec.abs() - strength * bias, min=0.0)
        cleaned = torch.polar(magnitude, spec.angle())
        out = torch.istft(cleaned, self.n_fft, self.hop_length, self.win_length,
                          self.window.to(batch.device), center=True, length=length)
        return out[0] if squeeze else out
