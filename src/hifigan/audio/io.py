"""Reading and writing audio files: one loader for training, evaluation and synthesis.

soundfile reads wav/flac/ogg in any PCM or float encoding; multi-channel audio
is averaged to mono; another sample rate is converted with soxr (high
quality). Every failure becomes a DataError naming the file and the problem.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import soundfile as sf
import soxr
import torch

from ..errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass
class LoadedAudio:
    """Mono float32 samples in [-1, 1] plus what the file originally was."""

    samples: np.ndarray  # [T], float32
    sampling_rate: int  # the rate of `samples` (the target rate when resampled)
    original_rate: int
    channels: int

    @property
    def resampled(self) -> bool:
        return self.sampling_rate != self.original_rate

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sampling_rate

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.samples)


def load_audio(path: str | Path, sampling_rate: Optional[int] = None) -> LoadedAudio:
    """Read `path` as mono float32, resampled to `sampling_rate` when given.

    Raises DataError (naming the file) when it is unreadable, not audio, empty,
    or holds NaN/inf samples.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not readable as audio ({_first_line(exc)})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: the file holds no samples")
    channels = data.shape[1]
    samples = data.mean(axis=1) if channels > 1 else data[:, 0]
    if not np.isfinite(samples).all():
        raise DataError(f"{path}: the audio contains NaN or infinite samples")
    if sampling_rate is not None and rate != sampling_rate:
        samples = resample(samples, rate, sampling_rate)
        out_rate = sampling_rate
    else:
        out_rate = rate
    return LoadedAudio(np.ascontiguousarray(samples, dtype=np.float32), int(out_rate), int(rate), channels)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality sample-rate conversion (soxr 'HQ')."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ").astype(
        np.float32, copy=False
    )


def save_audio(path: str | Path, samples: np.ndarray | torch.Tensor, sampling_rate: int,
               subtype: str = "PCM_16") -> Path:
    """Write mono audio; `subtype` "PCM_16" (default) or "FLOAT". Values are clipped to [-1, 1]."""
    path = Path(path)
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().float().cpu().numpy()
    samples = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sampling_rate, subtype=subtype)
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
