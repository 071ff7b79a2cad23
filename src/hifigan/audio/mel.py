"""The mel front end: the one log-mel used by training, evaluation and synthesis.

It reproduces the authors' `mel_spectrogram` exactly: reflect padding of
(n_fft - hop) / 2 on each side, an STFT with center=False and a periodic Hann
window, magnitude sqrt(re^2 + im^2 + 1e-9), Slaney-normalised mel filters as
librosa builds them, and a natural log clamped at 1e-5. With this padding a
clip of T samples gives exactly T // hop frames.
"""
from __future__ import annotations

from typing import Optional

import librosa
import torch
from torch import nn

from ..config import AudioConfig

LOG_CLAMP = 1e-5
MAGNITUDE_EPS = 1e-9


def mel_filterbank(
    sampling_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float]
) -> torch.Tensor:
    """Slaney mel filters [n_mels, n_fft // 2 + 1] (librosa's defaults, as the authors use)."""
    basis = librosa.filters.mel(
        sr=sampling_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax
    )
    return torch.from_numpy(basis).float()


class MelSpectrogram(nn.Module):
    """Audio [B, T] or [T] -> natural-log mel [B, n_mels, T // hop_length].

    The filterbank and window are buffers built once; the STFT always runs in
    float32 (autocast is switched off inside), so the module is safe to call
    in fp16/bf16 training and returns float32.
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
    ) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = fmax
        self.padding = (n_fft - hop_length) // 2
        self.register_buffer(
            "mel_basis", mel_filterbank(sampling_rate, n_fft, n_mels, fmin, fmax), persistent=False
        )
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    @classmethod
    def from_config(cls, audio: AudioConfig, for_loss: bool = False) -> "MelSpectrogram":
        """The generator-input mel, or with `for_loss` the loss mel (`fmax_for_loss`)."""
        return cls(
            sampling_rate=audio.sampling_rate,
            n_fft=audio.n_fft,
            hop_length=audio.hop_length,
            win_length=audio.win_length,
            n_mels=audio.n_mels,
            fmin=audio.fmin,
            fmax=audio.fmax_for_loss if for_loss else audio.fmax,
        )

    @property
    def min_samples(self) -> int:
        """Shortest input the reflect padding accepts (it yields at least one frame too)."""
        return max(self.padding + 1, self.hop_length)

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude [B, n_fft // 2 + 1, T // hop] with the authors' padding."""
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
        device_type = audio.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            audio = audio.float()
            padded = torch.nn.functional.pad(
                audio.unsqueeze(1), (self.padding, self.padding), mode="reflect"
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
            return torch.sqrt(spec.real.square() + spec.imag.square() + MAGNITUDE_EPS)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        magnitude = self.magnitude(audio)
        with torch.autocast(device_type=magnitude.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis, magnitude)
            return torch.log(torch.clamp(mel, min=LOG_CLAMP))
