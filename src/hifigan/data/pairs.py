"""Fine-tuning pairs: a TTS model's (teacher-forced) mel files matched to their audio.

A mel file is `<mel_dir>/<audio stem>.npy` or `.pt`, read by the reader synthesis
uses (audio/mel_files.py: [n_mels, frames], [1, n_mels, frames] or transposed
[frames, n_mels]). Mel frame i belongs to samples i*hop .. (i+1)*hop. Other
STFT paddings give a mel one or two frames longer or shorter than our T // hop:
such pairs are trimmed to the common length; a larger difference means the mel
does not belong to the audio (or another hop was used), and is an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..audio.mel_files import MEL_SUFFIXES, MelFileError, mel_file_frames, read_mel
from ..config import AudioConfig
from ..errors import DataError
from .lists import file_with_stem
from .probe import AudioHeader, UnusableAudio

FRAME_TOLERANCE = 2  # frames of difference trimmed silently (well, with a count)


def mel_path_for(audio_path: Path, mel_dir: Path) -> Optional[Path]:
    """The mel file named after the audio's stem, or None when there is none."""
    return file_with_stem(mel_dir, audio_path.stem, MEL_SUFFIXES)


def load_mel(path: Path, n_mels: int) -> torch.Tensor:
    """A mel file -> float32 [n_mels, frames] (the reader synthesis uses); UnusableAudio naming the file."""
    try:
        return read_mel(path, n_mels)
    except MelFileError as exc:
        raise UnusableAudio(exc.path, exc.reason) from None


def mel_frame_count(path: Path, n_mels: int) -> int:
    """Frames of a mel file, cheaply for .npy (only the header is read), by the same shape rules."""
    try:
        return mel_file_frames(path, n_mels)
    except MelFileError as exc:
        raise UnusableAudio(exc.path, exc.reason) from None


def mismatch_error(audio_path: Path, mel_path: Path, mel_frames: int, audio_frames: int, hop: int) -> UnusableAudio:
    return UnusableAudio(
        audio_path,
        f"its mel file {mel_path} has {mel_frames} frames but the audio has {audio_frames} "
        f"(samples // hop {hop}): more than {FRAME_TOLERANCE} frames apart, so the mel does not "
        "belong to this audio or was made with another hop",
    )


def align_pair(
    mel: torch.Tensor, audio: torch.Tensor, hop: int, audio_path: Path, mel_path: Path
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Trim mel [n_mels, F] and audio [T] to the common frame count: (mel, audio[:F*hop], trimmed)."""
    audio_frames = audio.shape[-1] // hop
    mel_frames = mel.shape[-1]
    if abs(mel_frames - audio_frames) > FRAME_TOLERANCE:
        raise mismatch_error(audio_path, mel_path, mel_frames, audio_frames, hop)
    frames = min(mel_frames, audio_frames)
    if frames == 0:
        raise UnusableAudio(audio_path, f"too short: less than one hop ({hop} samples)")
    return mel[:, :frames], audio[: frames * hop], mel_frames != audio_frames


@dataclass
class PairScan:
    """The result of checking every pair before training."""

    pairs: dict[Path, Path] = field(default_factory=dict)  # audio -> mel file
    trimmed: int = 0  # pairs whose lengths differ by 1-2 frames
    problems: list[str] = field(default_factory=list)


def scan_pairs(
    files: Sequence[Path], headers: dict[Path, AudioHeader], mel_dir: Path, audio: AudioConfig
) -> PairScan:
    """Find each audio file's mel and compare lengths (from headers: no audio decoding)."""
    scan = PairScan()
    if not mel_dir.is_dir():
        raise DataError(f"{mel_dir}: the mel folder for fine-tuning does not exist")
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            scan.problems.append(
                f"{path}: its stem {path.stem!r} is also that of {stems[path.stem]}; mel files are "
                "named after the stem, so fine-tuning needs unique audio file names"
            )
            continue
        stems[path.stem] = path
        mel_path = mel_path_for(path, mel_dir)
        if mel_path is None:
            scan.problems.append(f"{path}: no mel file {path.stem}.npy or {path.stem}.pt in {mel_dir}")
            continue
        try:
            mel_frames = mel_frame_count(mel_path, audio.n_mels)
        except UnusableAudio as exc:
            scan.problems.append(f"{path}: mel file {exc}")
            continue
        header = headers.get(path)
        if header is not None:
            audio_frames = header.frames_at(audio.sampling_rate) // audio.hop_length
            if abs(mel_frames - audio_frames) > FRAME_TOLERANCE:
                scan.problems.append(
                    str(mismatch_error(path, mel_path, mel_frames, audio_frames, audio.hop_length))
                )
                continue
            scan.trimmed += mel_frames != audio_frames
        scan.pairs[path] = mel_path
    return scan
