"""`Vocoder`: mel spectrograms (or audio, for copy synthesis) in, waveforms out.

Weight norm is folded and the generator runs in inference mode. Everything a
user does after training goes through this class; the CLI is a thin layer
over it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..audio import MelSpectrogram, resample
from ..checkpoints import load_generator
from ..config import HiFiGANConfig
from ..models import Generator

DeviceLike = Union[str, torch.device, None]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Vocoder:
    """A ready-to-use generator plus the mel front end it was trained with."""

    def __init__(
        self,
        generator: Generator,
        config: HiFiGANConfig,
        device: DeviceLike = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype or torch.float32
        if generator.has_weight_norm:
            generator.fold_weight_norm()
        self.generator = generator.eval().to(device=self.device, dtype=self.dtype)
        for parameter in self.generator.parameters():
            parameter.requires_grad_(False)
        self.mel_spectrogram = MelSpectrogram.from_config(config.audio).to(self.device)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: DeviceLike = None,
        dtype: Optional[torch.dtype] = None,
        config: Union[str, Path, HiFiGANConfig, None] = None,
    ) -> "Vocoder":
        """Load our checkpoints or the authors' `g_` files (config as in `load_generator`)."""
        generator, cfg = load_generator(path, config=config, return_config=True)
        return cls(generator, cfg, device=device, dtype=dtype)

    @property
    def sampling_rate(self) -> int:
        return self.config.audio.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.audio.hop_length

    @property
    def n_mels(self) -> int:
        return self.config.audio.n_mels

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Mel [n_mels, T] -> audio [T * hop]; mel [B, n_mels, T] -> audio [B, T * hop] (float32, CPU)."""
        mel = torch.as_tensor(mel)
        single = mel.dim() == 2
        batch = mel.unsqueeze(0) if single else mel
        audio = self.generator(batch.to(device=self.device, dtype=self.dtype)).squeeze(1)
        audio = audio.float().cpu()
        return audio[0] if single else audio

    @torch.inference_mode()
    def mel(self, audio: torch.Tensor | np.ndarray, sampling_rate: Optional[int] = None) -> torch.Tensor:
        """The model's input mel [n_mels, T // hop] for mono audio, resampled to the model's rate first."""
        samples = np.asarray(audio, dtype=np.float32).reshape(-1) if not isinstance(audio, torch.Tensor) \
            else audio.detach().float().cpu().numpy().reshape(-1)
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            samples = resample(samples, sampling_rate, self.sampling_rate)
        return self.mel_spectrogram(torch.from_numpy(samples).to(self.device))[0]

    def resynthesize(self, audio: torch.Tensor | np.ndarray, sampling_rate: Optional[int] = None) -> torch.Tensor:
        """Copy synthesis: the mel of `audio`, then the generator; audio at the model's rate."""
        return self(self.mel(audio, sampling_rate))
