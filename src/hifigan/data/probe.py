"""What is in an audio file, without training on it: header facts and usability.

`read_header` only parses the header (fast: the DataModule runs it over every
file before training); `inspect_file` decodes the samples too (what `hifigan
prepare` reports: level, clipping, silence). Both say why a file is unusable
in the words `prepare` prints: empty, not audio, unreadable, NaN, too short.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from ..audio import load_audio
from ..audio.io import printable_path, soundfile_name
from ..config import AudioConfig
from ..errors import DataError, first_line

SILENCE_PEAK_DB = -60.0  # a file whose peak stays below this is reported as silent
CLIP_LEVEL = 32767 / 32768  # int16 full scale, as a float
CLIP_MIN_SAMPLES = 3  # a file with this many samples at full scale is reported as clipping


class UnusableAudio(DataError):
    """A DataError that keeps the file and the short reason apart (for reports)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{printable_path(path)}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (str(self.path), self.reason))


@dataclass
class AudioHeader:
    """Header facts of one audio file."""

    path: Path
    sampling_rate: int
    channels: int
    frames: int  # samples per channel at `sampling_rate`
    format: str  # "WAV", "FLAC", "OGG"
    subtype: str  # "PCM_16", "FLOAT", "VORBIS", ...

    @property
    def seconds(self) -> float:
        return self.frames / self.sampling_rate

    def frames_at(self, rate: int) -> int:
        """Length after resampling to `rate` (soxr rounds to the nearest sample)."""
        if rate == self.sampling_rate:
            return self.frames
        return int(round(self.frames * rate / self.sampling_rate))


def minimum_samples(audio: AudioConfig) -> int:
    """Shortest clip (at the model's rate) that gives one mel frame: one hop, and at least
    the STFT's reflect padding plus one sample."""
    return max(audio.hop_length, (audio.n_fft - audio.hop_length) // 2 + 1)


def too_short_reason(samples: int, audio: AudioConfig) -> Optional[str]:
    need = minimum_samples(audio)
    if samples >= need:
        return None
    unit = "sample" if samples == 1 else "samples"
    return (
        f"too short: {samples} {unit} at {audio.sampling_rate} Hz, shorter than one mel frame "
        f"(needs {need}: hop {audio.hop_length}, n_fft {audio.n_fft})"
    )


def read_header(path: Path | str, audio: Optional[AudioConfig] = None) -> AudioHeader:
    """Parse the header; UnusableAudio when the file cannot be training data.

    With `audio`, a file shorter than one mel frame at the model's rate is unusable too.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnusableAudio(path, "file not found") from None
    except OSError as exc:
        raise UnusableAudio(path, f"unreadable ({exc.strerror})") from None
    if size == 0:
        raise UnusableAudio(path, "empty file (0 bytes)")
    try:
        info = sf.info(soundfile_name(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UnusableAudio(path, _libsndfile_reason(exc)) from None
    header = AudioHeader(
        path=path,
        sampling_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
    )
    if header.frames <= 0:
        raise UnusableAudio(path, "empty: the file holds no samples")
    if audio is not None:
        reason = too_short_reason(header.frames_at(audio.sampling_rate), audio)
        if reason:
            raise UnusableAudio(path, reason)
    return header


def _libsndfile_reason(exc: BaseException) -> str:
    text = first_line(exc)
    detail = text.split("': ", 1)[-1].strip()  # drop libsndfile's "Error opening 'path': "
    if "format not recognised" in detail.lower() or "unknown format" in detail.lower():
        return "not audio (format not recognised)"
    return f"unreadable ({detail.rstrip('.')})"


@dataclass
class FileReport:
    """One file as `hifigan prepare` sees it; `problem` is None for a usable file."""

    path: Path
    header: Optional[AudioHeader] = None
    problem: Optional[str] = None
    peak: float = 0.0  # max |sample| of the mono mix
    clipped_samples: int = 0
    warnings: list[str] = field(default_factory=list)  # usable, but off: see audio.io.level_warnings

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def seconds(self) -> float:
        return self.header.seconds if self.header else 0.0

    @property
    def peak_db(self) -> float:
        return 20.0 * float(np.log10(self.peak)) if self.peak > 0 else float("-inf")

    @property
    def silent(self) -> bool:
        return self.usable and self.peak_db < SILENCE_PEAK_DB

    @property
    def clipping(self) -> bool:
        return self.usable and self.clipped_samples >= CLIP_MIN_SAMPLES


def inspect_file(path: Path | str, audio: AudioConfig) -> FileReport:
    """Header, decode and level checks of one file (never raises for a bad file)."""
    path = Path(path)
    try:
        header = read_header(path, audio)
    except UnusableAudio as exc:
        return FileReport(path=path, problem=exc.reason)
    try:
        loaded = load_audio(path, warn=False)  # the file's own rate: levels before resampling
    except DataError as exc:
        text, prefix = str(exc), f"{printable_path(path)}: "
        reason = text[len(prefix):] if text.startswith(prefix) else text
        if "nan" in reason.lower():
            reason = "NaN or infinite samples"
        return FileReport(path=path, header=header, problem=reason)
    samples = loaded.samples
    if len(samples) != header.frames:  # a truncated file decodes to fewer samples
        header.frames = len(samples)
        reason = too_short_reason(header.frames_at(audio.sampling_rate), audio)
        if reason:
            return FileReport(path=path, header=header, problem=reason)
    magnitude = np.abs(samples)
    return FileReport(
        path=path,
        header=header,
        peak=float(magnitude.max()),
        clipped_samples=int(np.count_nonzero(magnitude >= CLIP_LEVEL)),
        warnings=list(loaded.warnings),
    )
