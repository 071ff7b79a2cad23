"""Griffin-Lim from the generator's input mel: the floor a neural vocoder must beat.

The log mel is turned back into the linear mel it stands for (`linear_mel`:
the front end's normalisation and log undone, so any toolkit's dialect works),
mapped back to a linear magnitude with librosa's non-negative least-squares
inversion of the same filterbank `MelSpectrogram` uses, and given phase by
librosa's fast Griffin-Lim (momentum 0.99, fixed random start). The STFT
framing matches the mel front end exactly (center=False over a signal padded
by (n_fft - hop) / 2, or n_fft / 2 for centred front ends, on each side), so
dropping that padding gives frames * hop samples aligned with the original.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import AudioConfig
from ..errors import DataError

DEFAULT_ITERATIONS = 32


@dataclass(frozen=True)
class GriffinLimSettings:
    iterations: int = DEFAULT_ITERATIONS
    momentum: float = 0.99
    seed: int = 0

    def describe(self) -> dict:
        return {
            "method": "exp(log-mel) -> librosa.feature.inverse.mel_to_stft (NNLS, same filterbank, "
                      "power 1) -> librosa.griffinlim (center=False, the mel front end's framing)",
            "iterations": self.iterations,
            "momentum": self.momentum,
            "seed": self.seed,
        }


def griffin_lim(
    mel: np.ndarray | torch.Tensor, audio: AudioConfig, settings: GriffinLimSettings = GriffinLimSettings()
) -> np.ndarray:
    """Log-mel [n_mels, frames] (the generator's input, `fmax`) -> float32 audio [frames * hop]."""
    import librosa
    import scipy.signal

    if isinstance(mel, torch.Tensor):
        mel = mel.detach().float().cpu().numpy()
    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim != 2 or mel.shape[0] != audio.n_mels:
        raise DataError(f"Griffin-Lim expects a log-mel shaped [{audio.n_mels}, frames], got {mel.shape}")
    if settings.iterations < 1:
        raise DataError(f"Griffin-Lim needs at least one iteration, got {settings.iterations}")
    from ..audio.mel import linear_mel

    frames = mel.shape[1]
    linear = linear_mel(torch.from_numpy(mel), audio).double().numpy()
    magnitude = librosa.feature.inverse.mel_to_stft(
        linear, sr=audio.sampling_rate, n_fft=audio.n_fft, power=audio.power, fmin=audio.fmin, fmax=audio.fmax,
        htk=audio.mel_scale == "htk", norm=audio.mel_norm,
    )
    waveform = librosa.griffinlim(
        magnitude,
        n_iter=settings.iterations,
        hop_length=audio.hop_length,
        win_length=audio.win_length,
        n_fft=audio.n_fft,
        window=scipy.signal.get_window("hann", audio.win_length, fftbins=audio.periodic_window),
        center=False,
        momentum=settings.momentum,
        init="random",
        random_state=settings.seed,
    )
    pad = audio.n_fft // 2 if audio.center else (audio.n_fft - audio.hop_length) // 2
    return waveform[pad : pad + frames * audio.hop_length].astype(np.float32)
