"""Named mel front ends: the dialects of the common toolkits, as `AudioConfig` dialect fields.

Each entry is the set of dialect fields (see `AudioConfig`) that makes our one
`MelSpectrogram` compute that toolkit's own preprocessing mel; STFT sizes,
band limits and the sampling rate stay the model's. Adding a dialect is one
entry here. Normalisation statistics (ParallelWaveGAN's stats.h5) belong to a
trained model, so its importer fills them in.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..config import AudioConfig, dialect_fields
from ..errors import ConfigError

FRONTENDS: dict[str, dict[str, Any]] = {
    # the authors' (jik876/hifi-gan meldataset.py mel_spectrogram), also NVIDIA's HiFi-GAN training mel
    "hifigan": {},
}


def frontend_names() -> list[str]:
    return sorted(FRONTENDS)


def with_frontend(audio: AudioConfig, name: str, **overrides: Any) -> AudioConfig:
    """A copy of `audio` speaking the dialect `name` (other dialect fields reset to the defaults)."""
    if name not in FRONTENDS:
        raise ConfigError(f"unknown mel front end {name!r}; front ends are {', '.join(frontend_names())}")
    defaults = {f.name: f.default for f in dataclasses.fields(AudioConfig) if f.name in dialect_fields()}
    values = {**defaults, **FRONTENDS[name], "frontend": name, **overrides}
    out = dataclasses.replace(audio, **values)
    out.validate()
    return out


def describe_frontend(audio: AudioConfig) -> str:
    """One line: bands, STFT sizes, band limits, framing, log and normalisation."""
    fmax = "Nyquist" if audio.fmax is None else f"{audio.fmax:g}"
    framing = "centred (1 + T // hop frames)" if audio.center else "T // hop frames"
    log = {"ln": "natural log", "log10": "log10"}[audio.log]
    if audio.log_gain != 1.0:
        log = f"{audio.log_gain:g} x {log}"
    floor = f"{'clamped at' if audio.log_floor_mode == 'clamp' else 'plus'} {audio.log_floor:g}"
    norm = {None: "", "per-band": ", per-band mean/scale normalised",
            "db-range": f", dB-range normalised to +-{audio.max_norm:g}"}[audio.normalize]
    return (f"{audio.frontend}: {audio.n_mels} bands, n_fft {audio.n_fft}, hop {audio.hop_length}, "
            f"win {audio.win_length}, {audio.fmin:g}-{fmax} Hz, {framing}, {log} {floor}{norm}")
