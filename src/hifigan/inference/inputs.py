"""Synthesis inputs: mel files (.npy, .pt) and audio files (copy synthesis), checked up front.

Every problem is reported before any synthesis starts, naming the file: an
unknown suffix, a mel with the wrong number of bands, NaN/inf values, values
far outside what a natural-log mel of audio in [-1, 1] can be (an error), or a
range that looks like a linear or log10 mel from another front end (a
warning: the most common mistake, and the audio comes out as noise or silence).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Union

import numpy as np
import torch

from ..audio import AUDIO_SUFFIXES
from ..audio.mel import LOG_CLAMP
from ..errors import DataError

MEL_SUFFIXES = (".npy", ".pt")
InputKind = Literal["mel", "audio"]

# The front end's log floor, log(1e-5) = -11.5; a full-scale signal stays below about log(24) = 3.2.
LOG_FLOOR = math.log(LOG_CLAMP)
# Far outside: no natural-log mel of audio in [-1, 1] gets here (dB scales, unnormalised 16-bit audio).
HARD_MIN, HARD_MAX = -25.0, 8.0


class MelRangeWarning(UserWarning):
    """A mel whose values look like another front end's (linear or log10 magnitudes)."""


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
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and input_kind(p))
            if not files:
                raise DataError(
                    f"{path}: the folder holds no mel ({', '.join(MEL_SUFFIXES)}) or audio "
                    f"({', '.join(AUDIO_SUFFIXES)}) files"
                )
            for file in files:
                found.append(SynthesisInput(file, input_kind(file), str(file.relative_to(path).with_suffix(""))))
        elif path.is_file():
            kind = input_kind(path)
            if kind is None:
                raise DataError(
                    f"{path}: unknown input type {path.suffix or '(no suffix)'}; expected a mel "
                    f"({', '.join(MEL_SUFFIXES)}) or audio ({', '.join(AUDIO_SUFFIXES)}) file, or a folder"
                )
            found.append(SynthesisInput(path, kind, path.stem))
        else:
            raise DataError(f"{path}: no such file or folder")
    seen: dict[str, Path] = {}
    for item in found:
        if item.name in seen:
            raise DataError(
                f"{seen[item.name]} and {item.path} would both be written as {item.name}.wav; "
                "rename one or synthesize them in separate runs"
            )
        seen[item.name] = item.path
    return found


def load_mel_file(path: Union[str, Path], n_mels: int) -> torch.Tensor:
    """A mel file as float32 [n_mels, frames]; [frames, n_mels] (NVIDIA's layout) is transposed.

    Raises DataError naming the file for unreadable files, wrong shapes and
    non-finite or impossible values; warns (MelRangeWarning) for suspicious ranges.
    """
    path = Path(path)
    array = _read_array(path)
    while array.dim() > 2 and array.shape[0] == 1:
        array = array[0]
    if array.dim() != 2:
        raise DataError(f"{path}: expected a mel [n_mels, frames], got shape {tuple(array.shape)}")
    if array.shape[0] != n_mels:
        if array.shape[1] == n_mels:
            array = array.T
        else:
            raise DataError(
                f"{path}: mel of shape {tuple(array.shape)} has no axis of {n_mels} bands, the number "
                f"this model takes (was it made with other mel settings?)"
            )
    if array.shape[1] == 0:
        raise DataError(f"{path}: the mel has no frames")
    mel = array.float().contiguous()
    check_mel_values(mel, str(path))
    return mel


def _read_array(path: Path) -> torch.Tensor:
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({_first_line(exc)})") from None
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise DataError(f"{path}: a mel must hold real numbers, this array is {array.dtype}")
        return torch.from_numpy(np.ascontiguousarray(array)).float()
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable tensor file ({_first_line(exc)})") from None
    if isinstance(data, dict):
        if isinstance(data.get("mel"), torch.Tensor):
            data = data["mel"]
        else:
            raise DataError(f"{path}: expected a tensor or a dict with a 'mel' tensor, found keys {sorted(map(str, data))[:8]}")
    if not isinstance(data, torch.Tensor):
        raise DataError(f"{path}: expected a mel tensor, found {type(data).__name__}")
    if data.is_complex() or data.dtype == torch.bool:
        raise DataError(f"{path}: a mel must hold real numbers, this tensor is {data.dtype}")
    return data.float()


def check_mel_values(mel: torch.Tensor, source: str) -> None:
    """Errors for NaN/inf or impossible values, MelRangeWarning for another front end's range."""
    finite = torch.isfinite(mel)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise DataError(f"{source}: the mel holds {bad} NaN or infinite value{'s' if bad > 1 else ''}")
    low, high = float(mel.min()), float(mel.max())
    span = f"values run from {low:.3g} to {high:.3g}"
    if low < HARD_MIN or high > HARD_MAX:
        raise DataError(
            f"{source}: {span}, far outside a natural-log mel of audio in [-1, 1] (about "
            f"{LOG_FLOOR:.1f} to 3); is it in decibels, normalised, or a mel of unscaled 16-bit audio? "
            "This model expects log(clamp(mel, 1e-5)) of audio in [-1, 1]"
        )
    if low >= 0.0:
        warnings.warn(
            f"{source}: {span}, all non-negative: this looks like a linear-magnitude mel, but the model "
            "expects natural-log magnitudes (apply log(clamp(mel, 1e-5)))",
            MelRangeWarning,
            stacklevel=2,
        )
    elif -5.1 <= low <= -2.0 and high <= 1.5:
        warnings.warn(
            f"{source}: {span}: the floor near -5 = log10(1e-5) suggests a log10 mel, but the model "
            "expects natural log (multiply a log10 mel by ln(10) = 2.3026)",
            MelRangeWarning,
            stacklevel=2,
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
