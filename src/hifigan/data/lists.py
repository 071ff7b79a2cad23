"""Corpus layouts -> lists of audio files, and the train/validation split.

Accepted layouts (see `load_splits`):
- a folder with `train.txt` + `val.txt` (what `hifigan prepare --out` writes);
- an LJ Speech folder (`metadata.csv` + `wavs/`), with the authors' `training.txt` /
  `validation.txt` or NVIDIA's `filelists/ljs_audio_{train,val}.txt` when present;
- a list file: the authors' `ID|text` lines (resolved to `<wavs>/ID.wav`) or plain
  audio paths (relative to the list's folder, or absolute), one a line;
- a folder of audio files, searched recursively.

A list line may carry `|`-separated fields after the audio; only the first is used.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..audio import AUDIO_SUFFIXES, find_audio_files
from ..errors import DataError

PathLike = Union[str, Path]

TRAIN_LIST = "train.txt"
VAL_LIST = "val.txt"
# the authors' LJ Speech split (ID|text lines, audio in wavs/)
AUTHORS_LISTS = ("training.txt", "validation.txt")
# NVIDIA DeepLearningExamples' LJ Speech lists (paths relative to the dataset folder)
NVIDIA_LISTS = (
    ("filelists/ljs_audio_train.txt", "filelists/ljs_audio_val.txt"),
    ("filelists/ljs_audio_train_v3.txt", "filelists/ljs_audio_val.txt"),
)
LJ_METADATA = "metadata.csv"

# default validation size: the authors hold out 150 LJ Speech utterances; a small
# corpus keeps 5% (at least one file) for validation instead.
DEFAULT_VALIDATION_FILES = 150
DEFAULT_VALIDATION_FRACTION = 0.05


class MissingFilesWarning(UserWarning):
    """Some entries of a file list point at files that do not exist (they are left out)."""


@dataclass
class DataSplits:
    """Training and validation audio files (absolute paths) and where they came from."""

    train: list[Path]
    val: list[Path]
    source: str = ""
    missing: list[Path] = field(default_factory=list)

    def describe(self) -> str:
        return f"{len(self.train)} training and {len(self.val)} validation files ({self.source})"


def normalise_path(path: PathLike) -> Path:
    """Absolute, normalised (no `..`), symlinks kept: paths compare equal across lists."""
    return Path(os.path.normpath(os.path.abspath(os.fspath(path))))


# ---- reading lists -----------------------------------------------------------------

def _entries(list_path: Path) -> list[str]:
    try:
        text = list_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{list_path}: file list not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{list_path}: not a text file list (it is not UTF-8 text)") from None
    except OSError as exc:
        raise DataError(f"{list_path}: cannot read file list ({exc.strerror})") from None
    out = []
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        out.append(line.split("|", 1)[0].strip())
    return out


def _is_path_entry(entry: str) -> bool:
    return Path(entry).suffix.lower() in AUDIO_SUFFIXES


def file_with_stem(folder: Path, stem: str, suffixes: Sequence[str]) -> Optional[Path]:
    """`folder/<stem><suffix>` for the first suffix that exists as a file, or None."""
    for suffix in suffixes:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def read_file_list(
    list_path: PathLike,
    base: Optional[PathLike] = None,
    audio_dir: Optional[PathLike] = None,
) -> tuple[list[Path], list[Path]]:
    """Audio files named by a list -> (existing files, missing files).

    Path entries resolve against `base` (default: the list's folder); `ID|text`
    entries against `audio_dir` (default: `wavs/` beside the list, else the
    list's folder), trying .wav, .flac and .ogg.
    """
    list_path = normalise_path(list_path)
    entries = _entries(list_path)
    if not entries:
        raise DataError(f"{list_path}: the file list is empty")
    base_dir = normalise_path(base) if base is not None else list_path.parent
    if audio_dir is not None:
        id_dirs = [normalise_path(audio_dir)]
    else:
        id_dirs = [base_dir / "wavs", base_dir]
    found: list[Path] = []
    missing: list[Path] = []
    for entry in entries:
        if _is_path_entry(entry):
            path = normalise_path(base_dir / entry)  # an absolute entry stays absolute
            (found if path.is_file() else missing).append(path)
            continue
        hit = None
        for folder in id_dirs:
            hit = file_with_stem(folder, entry, AUDIO_SUFFIXES)
            if hit is not None:
                break
        if hit is None:
            missing.append(normalise_path(id_dirs[0] / f"{entry}.wav"))
        else:
            found.append(normalise_path(hit))
    if not found:
        where = base_dir if any(_is_path_entry(e) for e in entries) else id_dirs[0]
        raise DataError(
            f"{list_path}: none of its {len(entries)} entries names an existing audio file "
            f"(first: {missing[0]}); entries are resolved against {where}"
        )
    return found, missing


def _warn_missing(list_path: Path, missing: Sequence[Path]) -> None:
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        warnings.warn(
            f"{list_path}: {len(missing)} listed files do not exist and are left out: {shown}{more}",
            MissingFilesWarning,
            stacklevel=3,
        )


def write_file_list(list_path: PathLike, files: Iterable[PathLike]) -> Path:
    """One path a line: relative to the list's folder when the file lies under it, else absolute."""
    list_path = normalise_path(list_path)
    folder = list_path.parent
    lines = []
    for file in files:
        file = normalise_path(file)
        try:
            lines.append(file.relative_to(folder).as_posix())
        except ValueError:
            lines.append(file.as_posix())
    folder.mkdir(parents=True, exist_ok=True)
    list_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return list_path


# ---- layouts -----------------------------------------------------------------------

@dataclass
class Corpus:
    """What a `data` argument holds: all its files, and its own split when it has one."""

    files: list[Path]
    description: str
    train: Optional[list[Path]] = None
    val: Optional[list[Path]] = None
    missing: list[Path] = field(default_factory=list)
    root: Optional[Path] = None


def _read_pair(train_list: Path, val_list: Path, description: str, **kwargs) -> Corpus:
    train, missing_train = read_file_list(train_list, **kwargs)
    val, missing_val = read_file_list(val_list, **kwargs)
    _warn_missing(train_list, missing_train)
    _warn_missing(val_list, missing_val)
    return Corpus(
        files=train + val, description=description, train=train, val=val,
        missing=missing_train + missing_val, root=train_list.parent,
    )


def is_ljspeech_folder(folder: Path) -> bool:
    return (folder / LJ_METADATA).is_file() and (folder / "wavs").is_dir()


def read_corpus(data: PathLike) -> Corpus:
    """Recognise the layout of `data` (see the module docstring) and list its files."""
    data = normalise_path(data)
    if not data.exists():
        raise DataError(f"{data}: no such file or folder")
    if data.is_file():
        if data.suffix.lower() in AUDIO_SUFFIXES:
            raise DataError(
                f"{data}: is one audio file; give a folder of audio files or a file list"
            )
        files, missing = read_file_list(data)
        _warn_missing(data, missing)
        return Corpus(files=files, description=f"file list {data.name}", missing=missing, root=data.parent)
    if (data / TRAIN_LIST).is_file():
        if (data / VAL_LIST).is_file():
            return _read_pair(data / TRAIN_LIST, data / VAL_LIST, f"{TRAIN_LIST} + {VAL_LIST}")
        files, missing = read_file_list(data / TRAIN_LIST)
        _warn_missing(data / TRAIN_LIST, missing)
        return Corpus(files=files, description=f"{TRAIN_LIST} (no {VAL_LIST})", missing=missing, root=data)
    if is_ljspeech_folder(data):
        train_name, val_name = AUTHORS_LISTS
        if (data / train_name).is_file() and (data / val_name).is_file():
            return _read_pair(
                data / train_name, data / val_name,
                f"LJ Speech, the authors' {train_name} + {val_name}", audio_dir=data / "wavs",
            )
        for train_name, val_name in NVIDIA_LISTS:
            if (data / train_name).is_file() and (data / val_name).is_file():
                return _read_pair(
                    data / train_name, data / val_name,
                    f"LJ Speech, NVIDIA's {train_name} + {val_name}", base=data,
                )
        files, missing = read_file_list(data / LJ_METADATA, audio_dir=data / "wavs")
        _warn_missing(data / LJ_METADATA, missing)
        return Corpus(files=files, description=f"LJ Speech {LJ_METADATA}", missing=missing, root=data)
    files = [normalise_path(p) for p in find_audio_files(data)]
    if not files:
        raise DataError(
            f"{data}: no audio files found (looked recursively for "
            f"{', '.join(AUDIO_SUFFIXES)}), and no {TRAIN_LIST} / {LJ_METADATA} list"
        )
    return Corpus(files=files, description="audio folder", root=data)


# ---- splitting ---------------------------------------------------------------------

def validation_count(total: int, validation_size: Union[int, float, None]) -> int:
    """How many of `total` files go to validation (an int is a count, a float a fraction)."""
    if validation_size is None:
        count = min(DEFAULT_VALIDATION_FILES, max(1, round(DEFAULT_VALIDATION_FRACTION * total)))
    elif isinstance(validation_size, bool):
        raise DataError(f"validation size must be a count or a fraction, got {validation_size!r}")
    elif isinstance(validation_size, float) and not validation_size.is_integer():
        if not 0.0 < validation_size < 1.0:
            raise DataError(f"a validation fraction must lie in (0, 1), got {validation_size}")
        count = max(1, round(validation_size * total))
    else:
        count = int(validation_size)
        if count < 0:
            raise DataError(f"validation size must not be negative, got {count}")
    if count >= total:
        if validation_size is not None and count > 0:
            raise DataError(
                f"validation size {validation_size} leaves no training files out of {total}"
            )
        count = max(0, total - 1)
    return count


def seeded_split(
    files: Sequence[Path], validation_size: Union[int, float, None] = None, seed: int = 1234
) -> tuple[list[Path], list[Path]]:
    """A reproducible split: the same files, size and seed always give the same lists."""
    ordered = sorted(normalise_path(f) for f in files)
    count = validation_count(len(ordered), validation_size)
    chosen = set(np.random.default_rng(seed).permutation(len(ordered))[:count].tolist())
    train = [f for i, f in enumerate(ordered) if i not in chosen]
    val = [f for i, f in enumerate(ordered) if i in chosen]
    return train, val


def _read_val_override(val: PathLike) -> list[Path]:
    val_path = normalise_path(val)
    if val_path.is_dir():
        files = [normalise_path(p) for p in find_audio_files(val_path)]
        if not files:
            raise DataError(f"{val_path}: no audio files found for validation")
        return files
    files, missing = read_file_list(val_path)
    _warn_missing(val_path, missing)
    return files


def split_corpus(
    corpus: Corpus,
    val: Optional[PathLike] = None,
    validation_size: Union[int, float, None] = None,
    seed: int = 1234,
    resplit: bool = False,
) -> DataSplits:
    """The corpus's own split (unless `resplit`), a `val` override, or a seeded split."""
    if val is not None:
        val_files = _read_val_override(val)
        held_out = set(val_files)
        pool = corpus.train if corpus.train is not None and not resplit else corpus.files
        train = [f for f in pool if f not in held_out]
        source = f"{corpus.description}; validation from {normalise_path(val)}"
    elif corpus.train is not None and corpus.val is not None and not resplit:
        train, val_files = list(corpus.train), list(corpus.val)
        source = corpus.description
    else:
        train, val_files = seeded_split(corpus.files, validation_size, seed)
        source = f"{corpus.description}, seeded split (seed {seed})"
    if not train:
        raise DataError(f"{corpus.root or 'the corpus'}: no training files are left after the split")
    return DataSplits(train=list(train), val=list(val_files), source=source, missing=list(corpus.missing))


def load_splits(
    data: PathLike,
    val: Optional[PathLike] = None,
    validation_size: Union[int, float, None] = None,
    seed: int = 1234,
) -> DataSplits:
    """Training and validation files for any layout `read_corpus` recognises.

    A corpus with its own split keeps it; otherwise the split is seeded
    (`validation_size`: a count, a fraction, or None for min(150, 5%)). `val`
    (a list file or an audio folder) replaces the validation files; they are
    then left out of training.
    """
    return split_corpus(read_corpus(data), val=val, validation_size=validation_size, seed=seed)
