"""Synthesis inputs: mel files (.npy, .pt) and audio files (copy synthesis), checked up front.

Every problem is reported before any synthesis starts, naming the file: an
unknown suffix, an unreadable file or a shape that is no mel (audio/mel_files.py,
the reader `finetune --mels` shares), NaN/inf values, and values the model's
front end cannot make. The check knows the front-end dialects (`AudioConfig`):
it computes the range the model's own front end produces (its floor, and the
mel of full-scale sines) and recognises the common wrong dialects (linear,
log10, decibels, Coqui's [-4, 4], ParallelWaveGAN's per-band normalisation,
natural log for a normalised model), naming them in a MelRangeWarning, or in a
DataError when the values are impossible for the model: the most common
mistake, and the audio comes out as noise or silence.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Literal, Optional, Union

import librosa
import numpy as np
import torch

from ..audio import AUDIO_SUFFIXES, MEL_SUFFIXES, MelSpectrogram, read_mel
from ..audio.io import expand_path
from ..audio.frontends import describe_values, format_number
from ..audio.mel import log_floor_value, normalize_mel
from ..config import AudioConfig
from ..errors import DataError

InputKind = Literal["mel", "audio"]
INPUT_SUFFIXES = MEL_SUFFIXES + AUDIO_SUFFIXES
COQUI_CLIP = 4.0  # Coqui's default max_norm: its normalised mels are clipped to [-4, 4]


class MelRangeWarning(UserWarning):
    """A mel whose values look like another front end's (linear, log10, decibels, normalised...)."""


@dataclass(frozen=True)
class SynthesisInput:
    """One input file, and the output name (relative, no suffix) its audio gets."""

    path: Path
    kind: InputKind
    name: str


def input_kind(path: Path) -> InputKind | None:
    suffix = path.suffix.lower()
    if suffix in MEL_SUFFIXES:
        return "mel"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return None


def collect_inputs(paths: Iterable[Union[str, Path]]) -> list[SynthesisInput]:
    """Files as given, folders searched recursively; output names keep a folder's sub-paths."""
    found: list[SynthesisInput] = []
    for raw in paths:
        path = Path(raw)
        for file in expand_path(path, INPUT_SUFFIXES, kind="mel or audio"):
            name = str(file.relative_to(path).with_suffix("")) if path.is_dir() else file.stem
            found.append(SynthesisInput(file, input_kind(file), name))
    seen: dict[str, Path] = {}
    for item in found:
        if item.name in seen:
            raise DataError(
                f"{seen[item.name]} and {item.path} would both be written as {item.name}.wav; "
                "rename one or synthesize them in separate runs"
            )
        seen[item.name] = item.path
    return found


def load_mel_file(path: Union[str, Path], audio: Union[AudioConfig, int]) -> torch.Tensor:
    """A mel file as float32 [n_mels, frames], its values checked against the model's front end.

    `audio` is the model's AudioConfig (a bare band count means the authors'
    front end). Raises DataError naming the file for unreadable files, wrong
    shapes and non-finite or impossible values; warns (MelRangeWarning) when the
    values look like another front end's, and (MelFileWarning) for a square mel.
    """
    audio = AudioConfig(n_mels=audio) if isinstance(audio, int) else audio
    mel = read_mel(path, audio.n_mels)
    check_mel_values(mel, audio, str(path))
    return mel


# ---- what the model's front end makes ------------------------------------------------------

def mel_value_range(audio: AudioConfig) -> tuple[float, float]:
    """(floor, top) of the mels this front end makes: the mel of silence, and of full-scale sines.

    Computed once per config (a few STFT frames of one sine per band).
    """
    return _front_end_range(json.dumps(dataclasses.asdict(audio), sort_keys=True))


@lru_cache(maxsize=32)
def _front_end_range(key: str) -> tuple[float, float]:
    audio = AudioConfig(**json.loads(key))
    floor = normalize_mel(torch.full((audio.n_mels, 1), log_floor_value(audio)), audio)
    with torch.no_grad():
        top = MelSpectrogram.from_config(audio)(_full_scale_sines(audio))
    return float(floor.min()), float(top.max())


def _full_scale_sines(audio: AudioConfig) -> torch.Tensor:
    """[n_mels, T]: a sine of amplitude 1 at each band's centre, the loudest a band can get."""
    fmax = audio.fmax if audio.fmax is not None else audio.sampling_rate / 2
    centres = librosa.mel_frequencies(audio.n_mels + 2, fmin=audio.fmin, fmax=fmax,
                                      htk=audio.mel_scale == "htk")[1:-1]
    t = np.arange(2 * audio.n_fft + 4 * audio.hop_length) / audio.sampling_rate
    return torch.from_numpy(np.sin(2 * np.pi * centres[:, None] * t).astype(np.float32))


def _limits(audio: AudioConfig, floor: float, top: float) -> tuple[float, float, float, float]:
    """(hard low, hard high, soft low, soft high): beyond hard is impossible, beyond soft suspicious.

    Generous below the floor (TTS predictions undershoot it), tighter above the
    top; tight around a clipped normalisation, whose values cannot leave it.
    """
    span = top - floor
    if audio.normalize == "db-range" and audio.clip_norm:
        return floor - 0.25 * span, top + 0.25 * span, floor - 0.05 * span, top + 0.05 * span
    return floor - span, top + span / 3, floor - 0.25 * span, top + 0.15 * span


def model_dialect(audio: AudioConfig) -> Optional[str]:
    """The family of mels the model takes, in the names `_recognise` gives (None: unusual scale)."""
    if audio.normalize == "db-range":
        return "coqui"
    if audio.normalize == "per-band":
        return "per-band"
    if audio.log == "log10":
        return {1.0: "log10", 20.0: "decibels"}.get(float(audio.log_gain))
    return "natural-log" if audio.log_gain == 1.0 else None


def _short(audio: AudioConfig) -> str:
    return {
        "natural-log": "a natural-log mel of audio in [-1, 1]",
        "log10": "a log10 mel of audio in [-1, 1]",
        "decibels": "a decibel mel of audio in [-1, 1]",
        "coqui": "a Coqui-normalised mel",
        "per-band": "a per-band-normalised mel",
    }.get(model_dialect(audio) or "", "this model's mels")


# ---- what the input looks like -----------------------------------------------------------

@dataclass(frozen=True)
class MelStats:
    """The few numbers the dialects differ in."""

    low: float
    high: float
    at_low: float  # fraction of values at the minimum (a clamp floor piles values there)
    at_clip: float  # fraction of values at +-clip (Coqui's clipping piles values there)
    band_mean: float  # median over bands of |band mean|
    band_std: float  # median over bands of the band's deviation
    frames: int


def mel_stats(mel: torch.Tensor, clip: float = COQUI_CLIP) -> MelStats:
    mel = mel.detach().float().cpu()
    bands = mel.reshape(-1, *mel.shape[-2:]).transpose(0, 1).reshape(mel.shape[-2], -1) if mel.dim() >= 2 \
        else mel.reshape(1, -1)
    low, high = float(mel.min()), float(mel.max())
    return MelStats(
        low=low,
        high=high,
        at_low=float((mel <= low + 1e-4 * max(1.0, abs(low))).float().mean()),
        at_clip=float(((mel.abs() - clip).abs() <= 1e-4).float().mean()),
        band_mean=float(bands.mean(dim=1).abs().median()),
        band_std=float(bands.std(dim=1, correction=0).median()),
        frames=int(bands.shape[1]),
    )


@dataclass(frozen=True)
class Look:
    """A recognised dialect: its family (as `model_dialect` names them) and how to say it."""

    dialect: str
    text: str


def _recognise(s: MelStats, model_floor: float, clip: float) -> Optional[Look]:
    """The first dialect whose signature the mel has (None: nothing recognisable)."""
    if -clip - 1e-4 <= s.low and s.high <= clip + 1e-4 and s.at_clip >= 0.01:
        return Look("coqui", f"looks like a Coqui-normalised mel (values clipped to [{format_number(-clip)}, {format_number(clip)}])")
    if s.low >= 0.0 and model_floor < 0.0:
        return Look("linear", "looks like a linear-magnitude mel (all values non-negative: no log taken)")
    if s.low <= -30.0:
        return Look("decibels", "looks like a decibel mel (20*log10, values below -30)")
    if s.frames >= 8 and s.band_mean <= 0.5 and 0.5 <= s.band_std <= 2.0 and s.low < 0.0 < s.high:
        return Look("per-band", "looks like a per-band-normalised mel (ParallelWaveGAN: band means near 0, "
                                "deviations near 1)")
    if s.high <= 1.5 and -5.3 <= s.low <= -2.0:
        return Look("log10", "looks like a log10 mel (floor near log10(1e-5) = -5)")
    if s.high <= 1.5 and abs(s.low + 10.0) <= 0.3 and s.at_low >= 0.01:
        return Look("log10", "looks like a log10 mel (floor near log10(1e-10) = -10, as ParallelWaveGAN's "
                             "before its normalisation)")
    if -12.5 <= s.low <= -8.5 and s.high <= 3.5:
        return Look("natural-log", "looks like a natural-log mel (floor near log(1e-5) = -11.5)")
    return None


def _hint(look: Optional[Look], audio: AudioConfig) -> str:
    """How to convert, where it is one formula (into a natural-log model's scale)."""
    if look is None or model_dialect(audio) != "natural-log":
        return ""
    return {
        "linear": f" (apply log(clamp(mel, {format_number(audio.log_floor)})))",
        "log10": " (multiply a log10 mel by ln(10) = 2.3026)",
        "decibels": " (multiply a decibel mel by ln(10) / 20 = 0.1151)",
    }.get(look.dialect, "")


def check_mel_values(mel: torch.Tensor, audio: AudioConfig, source: str = "mel") -> None:
    """DataError for NaN/inf or values impossible for the model's front end; MelRangeWarning for
    another front end's mel, or values outside what the model's front end makes."""
    finite = torch.isfinite(mel)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise DataError(f"{source}: the mel holds {bad} NaN or infinite value{'s' if bad > 1 else ''}")
    floor, top = mel_value_range(audio)
    hard_low, hard_high, soft_low, soft_high = _limits(audio, floor, top)
    clip = audio.max_norm if audio.normalize == "db-range" else COQUI_CLIP
    stats = mel_stats(mel, clip)
    look = _recognise(stats, floor, clip)
    if look is not None and look.dialect == model_dialect(audio):
        look = None  # it looks like what the model takes
    values = f"values run from {stats.low:.3g} to {stats.high:.3g}"
    expects = f"this model expects {describe_values(audio)}"
    makes = f"(about {floor:.1f} to {top:.1f})"
    if stats.low < hard_low or stats.high > hard_high:
        reason = (f"{look.text}, but {expects}{_hint(look, audio)}" if look else
                  f"was it made by another front end, or from unscaled 16-bit audio? {expects[0].upper()}{expects[1:]}")
        raise DataError(f"{source}: {values}, far outside {_short(audio)} {makes}: {reason}")
    if look is not None:
        message = f"{source}: {values}: {look.text}, but {expects}{_hint(look, audio)}"
    elif stats.low < soft_low or stats.high > soft_high:
        message = f"{source}: {values}, outside what this model's front end makes {makes}: {expects}"
    else:
        return
    warnings.warn(message, MelRangeWarning, stacklevel=2)
