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
from .mel import log_floor_value
from ..errors import ConfigError

FRONTENDS: dict[str, dict[str, Any]] = {
    # the authors' (jik876/hifi-gan meldataset.py mel_spectrogram), also NVIDIA's HiFi-GAN training mel
    "hifigan": {},
    # ESPnet / ParallelWaveGAN (parallel_wavegan/bin/preprocess.py logmelfilterbank + normalize.py):
    # librosa.stft centred with reflect padding, |X| with no epsilon, log10(max(mel, 1e-10)), then
    # (mel - mean) / scale per band from stats.h5
    "parallel-wavegan": dict(center=True, magnitude_eps=0.0, log="log10", log_floor=1e-10,
                             normalize="per-band"),
    # SpeechBrain (speechbrain/lobes/models/HifiGAN.py mel_spectrogram, torchaudio MelSpectrogram with
    # the recipes' arguments): centred reflect framing, |X| (power 1) with no epsilon, Slaney filters,
    # dynamic_range_compression = ln(clamp(mel, 1e-5))
    "speechbrain": dict(center=True, magnitude_eps=0.0),
    # NVIDIA's FastPitch / Tacotron 2 (common/layers.py TacotronSTFT): reflect padding of n_fft / 2
    # (centred), sqrt(re^2 + im^2) with no epsilon, ln(clamp(mel, 1e-5)); its frames sit half a hop
    # earlier than the HiFi-GAN training mel's
    "fastpitch": dict(center=True, magnitude_eps=0.0),
    # Coqui TTS (TTS/utils/audio/processor.py melspectrogram): librosa.stft centred, |X|, then
    # spec_gain x log_func(max(mel, 1e-8)); these are its defaults (log10, 20 dB, range normalised to
    # [-4, 4]); a Coqui checkpoint's config.json sets log, gain and normalisation
    # NVIDIA NeMo (nemo/collections/asr/parts/preprocessing/features.py FilterbankFeatures, as its
    # hifigan.yaml sets it): exact_pad zero-pads (n_fft - hop) / 2 each side, a symmetric Hann window,
    # |X| with no epsilon, ln(clamp(mel, 1e-5)), the last frame overwritten with pad_value -11.52
    "nemo": dict(pad_mode="constant", periodic_window=False, magnitude_eps=0.0, last_frame_value=-11.52),
    "coqui": dict(center=True, magnitude_eps=0.0, log="log10", log_gain=20.0, log_floor=1e-8,
                  normalize="db-range"),
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


def describe_values(audio: AudioConfig) -> str:
    """What the model expects, in words: 'the hifigan front end: natural-log magnitudes, floor ...'."""
    quantity = "magnitudes" if audio.power == 1.0 else "power"
    floor, base = log_floor_value(audio), format_number(audio.log_floor)
    if audio.normalize == "db-range":
        low = -audio.max_norm if audio.symmetric_norm else 0.0
        scale = (f"decibels (20*log10 {quantity}) minus ref_level_db {format_number(audio.ref_level_db)}, normalised to "
                 f"[{format_number(low)}, {format_number(audio.max_norm)}]" + (" and clipped" if audio.clip_norm else ""))
    elif audio.log == "ln" and audio.log_gain == 1.0:
        scale = f"natural-log {quantity}, floor log({base}) = {floor:.1f}"
    elif audio.log == "log10" and audio.log_gain == 1.0:
        scale = f"log10 {quantity}, floor log10({base}) = {floor:.1f}"
    elif audio.log == "log10" and audio.log_gain == 20.0:
        scale = f"decibels (20*log10 {quantity}), floor {floor:.0f} dB"
    else:
        scale = f"{format_number(audio.log_gain)}*{audio.log} {quantity}, floor {floor:.1f}"
    if audio.normalize == "per-band":
        scale += ", normalised per band ((mel - mean) / scale)"
    return f"the {audio.frontend} front end: {scale}"


def format_number(value: float) -> str:
    """1e-05 -> '1e-5', 20.0 -> '20': numbers as a person writes them."""
    return f"{value:g}".replace("e-0", "e-").replace("e+0", "e+")


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
