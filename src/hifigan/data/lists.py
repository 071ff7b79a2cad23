"""Corpus layouts -> lists of audio files, and the train/validation split.

Accepted layouts (see `load_splits`):
- a folder with `train.txt` + `val.txt` (what `hifigan prepare --out` writes);
- an LJ Speech folder (`metadata.csv` + `wavs/`), with the authors' `training.txt` /
  `validation.txt` or NVIDIA's `filelists/ljs_audio_{train,val}.txt` when present;
- a list file: the authors' `ID|text` lines (resolved to `<wavs>/ID.wav`) or plain
  audio paths (relative to the list's folder, or absolute), one a line;
- a folder of audio files, searched recursively.

A list line may carry `|`-separated fields after the audio; only the first is used. That
field is a file name, read and written as the name's own bytes (os.fsdecode / os.fsencode),
so names that are not UTF-8 round-trip; the text fields may hold any bytes. An ID never
reaches outside its audio folder.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..audio import AUDIO_SUFFIXES, find_audio_files
from ..audio.io import printable_path
from ..files import TEMPORARY, atomic_write_many
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


class ListLineWarning(UserWarning):
    """Lines of a file list left out (an ID outside its audio folder), or whose text is not UTF-8."""


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

@dataclass
class ListEntry:
    """The audio field of one list line (a path or an ID) and the line's number (from 1)."""

    line: int
    audio: str


def _entries(list_path: Path) -> list[ListEntry]:
    """Every line's audio field, decoded as a file name; lines whose text fields are not
    UTF-8 are kept (the text is not used here) and counted in one ListLineWarning."""
    shown = printable_path(list_path)
    try:
        data = list_path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{shown}: file list not found") from None
    except OSError as exc:
        raise DataError(f"{shown}: cannot read file list ({exc.strerror})") from None
    if b"\x00" in data:
        raise DataError(f"{shown}: not a text file list (it holds NUL bytes: binary, or UTF-16 text)")
    out = []
    bad_text = 0
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        audio, _, text = line.partition(b"|")
        bad_text += not _is_utf8(text)
        out.append(ListEntry(number, os.fsdecode(audio.strip())))
    if bad_text:
        lines = "1 line has" if bad_text == 1 else f"{bad_text} lines have"
        warnings.warn(
            f"{shown}: {lines} text that is not UTF-8 (kept: only the audio column is used)",
            ListLineWarning,
            stacklevel=4,
        )
    return out


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_path_entry(entry: str) -> bool:
    return Path(entry).suffix.lower() in AUDIO_SUFFIXES


def file_with_stem(folder: Path, stem: str, suffixes: Sequence[str]) -> Optional[Path]:
    """`folder/<stem><suffix>` for the first suffix that exists as a file, or None."""
    for suffix in suffixes:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


@dataclass
class ListContents:
    """What one file list names: existing files, missing files, and the lines refused."""

    found: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # "<list>: line N: why"


def read_file_list(
    list_path: PathLike,
    base: Optional[PathLike] = None,
    audio_dir: Optional[PathLike] = None,
) -> tuple[list[Path], list[Path]]:
    """Audio files named by a list -> (existing files, missing files).

    Path entries resolve against `base` (default: the list's folder); `ID|text`
    entries against `audio_dir` (default: `wavs/` beside the list, else the
    list's folder), trying .wav, .flac and .ogg. An ID that leads outside that
    folder is left out with a ListLineWarning naming its line.
    """
    contents = _read_list(list_path, base, audio_dir)
    return contents.found, contents.missing


def _read_list(
    list_path: PathLike, base: Optional[PathLike] = None, audio_dir: Optional[PathLike] = None
) -> ListContents:
    list_path = normalise_path(list_path)
    entries = _entries(list_path)
    if not entries:
        raise DataError(f"{printable_path(list_path)}: the file list is empty")
    base_dir = normalise_path(base) if base is not None else list_path.parent
    if audio_dir is not None:
        id_dirs = [normalise_path(audio_dir)]
    else:
        id_dirs = [base_dir / "wavs", base_dir]
    contents = ListContents()
    for entry in entries:
        if _is_path_entry(entry.audio):
            path = normalise_path(base_dir / entry.audio)  # an absolute entry stays absolute
            (contents.found if path.is_file() else contents.missing).append(path)
            continue
        problem = _id_problem(entry.audio, id_dirs[0])
        if problem:
            contents.rejected.append(f"{printable_path(list_path)}: line {entry.line}: {problem}")
            continue
        hit = None
        for folder in id_dirs:
            hit = file_with_stem(folder, entry.audio, AUDIO_SUFFIXES)
            if hit is not None:
                break
        if hit is None:
            contents.missing.append(normalise_path(id_dirs[0] / f"{entry.audio}.wav"))
        else:
            contents.found.append(normalise_path(hit))
    _warn_rejected(list_path, contents.rejected)
    if not contents.found:
        where = base_dir if any(_is_path_entry(e.audio) for e in entries) else id_dirs[0]
        first = printable_path(contents.missing[0]) if contents.missing else contents.rejected[0]
        raise DataError(
            f"{printable_path(list_path)}: none of its {len(entries)} entries names an existing audio "
            f"file (first: {first}); entries are resolved against {printable_path(where)}"
        )
    return contents


def _id_problem(entry: str, folder: Path) -> Optional[str]:
    """Why the ID of an `ID|text` line cannot name a file in `folder` (None when it can)."""
    if not entry:
        return "no ID before the first '|'"
    if not normalise_path(folder / entry).is_relative_to(folder):  # '..' or an absolute path
        return f"ID '{printable_path(entry)}' leads outside the corpus folder {printable_path(folder)}"
    return None


def _warn_rejected(list_path: Path, rejected: Sequence[str]) -> None:
    if rejected:
        prefix = f"{printable_path(list_path)}: "
        shown = "; ".join(r.removeprefix(prefix) for r in rejected[:3])
        more = f"; and {len(rejected) - 3} more" if len(rejected) > 3 else ""
        lines = "1 line" if len(rejected) == 1 else f"{len(rejected)} lines"
        warnings.warn(f"{prefix}{lines} left out: {shown}{more}", ListLineWarning, stacklevel=4)


def _warn_missing(list_path: Path, missing: Sequence[Path]) -> None:
    if missing:
        shown = ", ".join(printable_path(p) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        warnings.warn(
            f"{printable_path(list_path)}: {len(missing)} listed files do not exist and are left out: "
            f"{shown}{more}",
            MissingFilesWarning,
            stacklevel=3,
        )


def write_file_list(list_path: PathLike, files: Iterable[PathLike]) -> Path:
    """One path a line: relative to the list's folder when the file lies under it, else absolute.

    Written atomically; DataError for a file whose name no list line can hold (see `unlistable_reason`).
    """
    list_path = normalise_path(list_path)
    write_files_atomic({list_path: file_list_bytes(list_path, files)})
    return list_path


def unlistable_reason(path: PathLike) -> Optional[str]:
    """Why a list line cannot name `path` (None when it can): lines split at '|' and line
    breaks, and are stripped of surrounding spaces."""
    text = os.fspath(path)
    if "|" in text or "\n" in text or "\r" in text or text != text.rstrip(" \t\x0b\x0c"):
        return "its name holds '|', a line break or trailing spaces, which a file list cannot hold; rename it"
    return None


def file_list_bytes(list_path: Path, files: Iterable[PathLike]) -> bytes:
    """The bytes of `write_file_list`: each line is the file name's own bytes (os.fsencode)."""
    folder = list_path.parent
    lines = []
    for file in files:
        file = normalise_path(file)
        reason = unlistable_reason(file)
        if reason:
            raise DataError(f"{printable_path(file)}: {reason}")
        try:
            line = file.relative_to(folder).as_posix()
        except ValueError:
            line = file.as_posix()
        if line.startswith("#") or line[:1].isspace():  # would read back as a comment, or stripped
            line = file.as_posix()
        lines.append(os.fsencode(line) + b"\n")
    return b"".join(lines)


def write_files_atomic(contents: dict[Path, bytes]) -> None:
    """Write each file to a temporary name beside it, then rename them all into place.

    A failure while writing (a full disk, a read-only folder) leaves every
    target as it was and no temporary behind; it is a DataError naming the file.
    Temporaries get the umask's permissions (0666 asked), not mkstemp's 0600.
    """
    try:
        atomic_write_many(contents)
    except OSError as exc:
        name = Path(exc.filename) if exc.filename else next(iter(contents), Path("."))
        match = TEMPORARY.match(name.name)
        target = name.with_name(match.group("target")) if match else name
        raise DataError(f"{printable_path(target)}: cannot write ({exc.strerror or exc})") from None


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
    rejected: list[str] = field(default_factory=list)  # list lines left out, "<list>: line N: why"


def _read_checked(list_path: Path, **kwargs) -> ListContents:
    """A list of the corpus, its missing files warned about (its refused lines already are)."""
    contents = _read_list(list_path, **kwargs)
    _warn_missing(list_path, contents.missing)
    return contents


def _single_list(list_path: Path, description: str, root: Path, **kwargs) -> Corpus:
    contents = _read_checked(list_path, **kwargs)
    return Corpus(
        files=contents.found, description=description, missing=contents.missing, root=root,
        rejected=contents.rejected,
    )


def _read_pair(train_list: Path, val_list: Path, description: str, **kwargs) -> Corpus:
    train = _read_checked(train_list, **kwargs)
    val = _read_checked(val_list, **kwargs)
    return Corpus(
        files=train.found + val.found, description=description, train=train.found, val=val.found,
        missing=train.missing + val.missing, root=train_list.parent, rejected=train.rejected + val.rejected,
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
        return _single_list(data, f"file list {data.name}", data.parent)
    if (data / TRAIN_LIST).is_file():
        if (data / VAL_LIST).is_file():
            return _read_pair(data / TRAIN_LIST, data / VAL_LIST, f"{TRAIN_LIST} + {VAL_LIST}")
        return _single_list(data / TRAIN_LIST, f"{TRAIN_LIST} (no {VAL_LIST})", data)
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
        return _single_list(data / LJ_METADATA, f"LJ Speech {LJ_METADATA}", data, audio_dir=data / "wavs")
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
    return _read_checked(val_path).found


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
