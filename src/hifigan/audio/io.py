"""Reading and writing audio files: one loader for training, evaluation and synthesis.

soundfile reads wav/flac/ogg in any PCM or float encoding; multi-channel audio
is averaged to mono; another sample rate is converted with soxr (high
quality). Every failure becomes a DataError naming the file and the problem.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import soundfile as sf
import soxr
import torch

from ..files import atomic_write
from ..errors import DataError, first_line

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# a mono mix whose RMS is below this fraction of its channels' RMS has lost the signal
DOWNMIX_MIN_RMS_RATIO = 0.1


class AudioWarning(UserWarning):
    """A file that loads, but whose samples will not train or synthesise as the user expects."""


@dataclass
class LoadedAudio:
    """Mono float32 samples (in [-1, 1] unless `warnings` says otherwise) plus what the file was."""

    samples: np.ndarray  # [T], float32
    sampling_rate: int  # the rate of `samples` (the target rate when resampled)
    original_rate: int
    channels: int
    warnings: tuple[str, ...] = ()  # what is off about the levels (see `level_warnings`)

    @property
    def resampled(self) -> bool:
        return self.sampling_rate != self.original_rate

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sampling_rate

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.samples)


def load_audio(path: str | Path, sampling_rate: Optional[int] = None, warn: bool = True) -> LoadedAudio:
    """Read `path` as mono float32, resampled to `sampling_rate` when given.

    Raises DataError (naming the file) when it is unreadable, not audio, empty,
    or holds NaN/inf samples. A mono mix that cancels out or float samples
    beyond full scale are kept as they are and reported in `warnings` (and as
    an AudioWarning naming the file, unless `warn` is False: `prepare` reports them itself).
    """
    path = Path(path)
    shown = printable_path(path)
    try:
        data, rate = sf.read(soundfile_name(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DataError(f"{shown}: file not found") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise DataError(f"{shown}: not readable as audio ({first_line(exc)})") from None
    if data.shape[0] == 0:
        raise DataError(f"{shown}: the file holds no samples")
    channels = data.shape[1]
    samples = data.mean(axis=1) if channels > 1 else data[:, 0]
    if not np.isfinite(samples).all():
        raise DataError(f"{shown}: the audio contains NaN or infinite samples")
    found = level_warnings(data, samples)
    if warn:
        for text in found:
            warnings.warn(f"{shown}: {text}", AudioWarning, stacklevel=2)
    if sampling_rate is not None and rate != sampling_rate:
        samples = resample(samples, rate, sampling_rate)
        out_rate = sampling_rate
    else:
        out_rate = rate
    return LoadedAudio(
        np.ascontiguousarray(samples, dtype=np.float32), int(out_rate), int(rate), channels, tuple(found)
    )


def level_warnings(data: np.ndarray, mono: np.ndarray) -> list[str]:
    """What is off about decoded samples `data` [T, channels] and their mono mix: the reasons, no path.

    Float files can hold samples beyond +-1 (clipped when saved, off-scale in the
    mel); channels in opposite phase average to near silence.
    """
    found = []
    peak = float(np.abs(data).max())
    if peak > 1.0:
        found.append(
            f"samples reach peak {peak:.2f}, beyond full scale (+-1): they clip when saved "
            "and give an off-scale mel; normalise the file"
        )
    if data.shape[1] > 1:
        channel_rms = float(np.sqrt(np.mean(np.square(data, dtype=np.float64))))
        mono_rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
        if channel_rms > 0.0 and mono_rms < DOWNMIX_MIN_RMS_RATIO * channel_rms:
            found.append(
                f"averaging its {data.shape[1]} channels to mono keeps {100 * mono_rms / channel_rms:.0f}% "
                "of their level (channels in opposite phase?): the mono mix is nearly silent; "
                "keep one channel instead"
            )
    return found


def soundfile_name(path: Path) -> str | bytes:
    """The name soundfile opens: the text, or the raw bytes of a name the filesystem encoding cannot
    spell (a file name that is not UTF-8 comes back from os.listdir with surrogate escapes)."""
    name = os.fspath(path)
    try:
        name.encode(sys.getfilesystemencoding())
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


def printable_path(path: str | Path) -> str:
    """The path as text that prints anywhere: bytes of a name that are not UTF-8 shown as \\xNN."""
    text = os.fspath(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality sample-rate conversion (soxr 'HQ')."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ").astype(
        np.float32, copy=False
    )


def save_audio(path: str | Path, samples: np.ndarray | torch.Tensor, sampling_rate: int,
               subtype: str = "PCM_16") -> Path:
    """Write mono audio; `subtype` "PCM_16" (default) or "FLOAT". Values are clipped to [-1, 1].

    Written under a temporary name beside `path`, then renamed (`atomic_write`): a full disk or a
    kill leaves the previous file or none, never a truncated wav that looks valid. NaN/inf samples
    are refused; every failure is a DataError naming the file.
    """
    path = Path(path)
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().float().cpu().numpy()
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if not np.isfinite(samples).all():
        raise DataError(f"{printable_path(path)}: refusing to write audio with NaN or infinite samples")
    samples = np.clip(samples, -1.0, 1.0)
    container = path.suffix.lstrip(".").upper() or "WAV"  # soundfile cannot see the temporary name's suffix

    def write(target: Path) -> None:
        sf.write(soundfile_name(target), samples, sampling_rate, subtype=subtype, format=container)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
    except (OSError, sf.SoundFileError, AssertionError) as exc:  # soundfile asserts that every frame was written
        reason = getattr(exc, "strerror", None) or first_line(exc)
        raise DataError(f"{printable_path(path)}: cannot write audio ({reason})") from None
    return path


def find_audio_files(folder: str | Path) -> list[Path]:
    """Audio files under `folder`, recursively, in a stable (sorted) order; [] when there are none."""
    return _walk(Path(folder), AUDIO_SUFFIXES)


def expand_paths(paths: Iterable[str | Path], suffixes: Sequence[str], kind: str = "audio") -> list[Path]:
    """Files as given and folders searched recursively: the one way every command reads its inputs.

    Files keep the order they were given in; a folder becomes its matching files
    (suffixes compared case-insensitively, hidden files and folders skipped), sorted.
    DataError names the path for a missing one, a file with another suffix, or a
    folder without any matching file; `kind` ("audio", "mel") says what was sought.
    """
    return [file for path in paths for file in expand_path(path, suffixes, kind)]


def expand_path(path: str | Path, suffixes: Sequence[str], kind: str = "audio") -> list[Path]:
    """One argument of `expand_paths`: [the file], or a folder's matching files, sorted."""
    path = Path(path)
    wanted = f"{kind} ({', '.join(suffixes)})"
    if path.is_dir():
        files = _walk(path, suffixes)
        if not files:
            raise DataError(f"{path}: the folder holds no {wanted} files")
        return files
    if path.is_file():
        if path.suffix.lower() not in suffixes:
            article = "an" if wanted[:1].lower() in "aeiou" else "a"
            raise DataError(
                f"{path}: unknown input type {path.suffix or '(no suffix)'}; expected {article} {wanted} "
                "file, or a folder"
            )
        return [path]
    raise DataError(f"{path}: does not exist (no such file or folder)")


def _walk(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files under `folder` with one of `suffixes`, sorted; hidden ones (macOS '._x.wav') are skipped."""
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


