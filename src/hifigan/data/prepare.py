"""`hifigan prepare`: check a corpus before training, write its lists, resample it.

Every file is decoded once (threads: libsndfile and soxr release the GIL) and
summarised: duration, sample rates, channels, encodings, files shorter than a
training segment, silent files, clipping, and the unusable files with the
reason each; files that load but whose levels are off (a mono mix that cancels
out, float samples beyond full scale) and list lines left out are listed too.
With `out`, the usable files are split (the corpus's own split, or a seeded
one) into `train.txt` / `val.txt` there, optionally pointing at copies
resampled to the model's rate. An `out` that cannot be written is refused
before any file is read, and every file is written under a temporary name and
renamed, so a failure leaves the old lists (or none), never half of them.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar, Union

from tqdm.auto import tqdm

from ..audio import load_audio, save_audio
from ..audio.io import printable_path
from ..config import HiFiGANConfig, resolve_config
from ..errors import DataError
from .lists import (
    TRAIN_LIST,
    VAL_LIST,
    Corpus,
    DataSplits,
    PathLike,
    file_list_bytes,
    normalise_path,
    read_corpus,
    split_corpus,
    unlistable_reason,
    write_files_atomic,
)
from .probe import CLIP_MIN_SAMPLES, SILENCE_PEAK_DB, FileReport, inspect_file

UNUSABLE_LIST = "unusable.txt"
RESAMPLED_DIR = "wavs"

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _parallel(fn: Callable[[T], R], items: Sequence[T], workers: int, progress: bool, desc: str) -> list[R]:
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=not progress, leave=False)
    try:
        if workers <= 1:
            out = []
            for item in items:
                out.append(fn(item))
                bar.update()
            return out
        with ThreadPoolExecutor(workers) as pool:
            out = []
            for result in pool.map(fn, items):
                out.append(result)
                bar.update()
            return out
    finally:
        bar.close()


@dataclass
class CorpusReport:
    """What `hifigan prepare` found; `summary()` is the text it prints."""

    root: Path
    description: str
    files: list[FileReport]
    config: HiFiGANConfig
    elapsed: float = 0.0
    workers: int = 1
    missing: list[Path] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # list lines left out, with the reason

    @property
    def usable(self) -> list[FileReport]:
        return [f for f in self.files if f.usable]

    @property
    def unusable(self) -> list[FileReport]:
        return [f for f in self.files if not f.usable]

    @property
    def hours(self) -> float:
        return sum(f.seconds for f in self.usable) / 3600.0

    @property
    def short(self) -> list[FileReport]:
        rate = self.config.audio.sampling_rate
        segment = self.config.training.segment_size
        return [f for f in self.usable if f.header.frames_at(rate) < segment]

    @property
    def silent(self) -> list[FileReport]:
        return [f for f in self.files if f.silent]

    @property
    def clipping(self) -> list[FileReport]:
        return [f for f in self.files if f.clipping]

    @property
    def warned(self) -> list[FileReport]:
        """Usable files whose levels are off (see audio.io.level_warnings)."""
        return [f for f in self.usable if f.warnings]

    def display(self, path: Path) -> str:
        try:
            return printable_path(path.relative_to(self.root).as_posix())
        except ValueError:
            return printable_path(path)

    def _names(self, reports: Sequence[FileReport], limit: int = 4) -> str:
        names = ", ".join(self.display(r.path) for r in reports[:limit])
        return names + (f", and {len(reports) - limit} more" if len(reports) > limit else "")

    def summary(self) -> str:
        audio = self.config.audio
        rate = audio.sampling_rate
        usable = self.usable
        lines = [f"Corpus {printable_path(self.root)} ({self.description})"]

        def row(label: str, text: str, detail: str = "") -> None:
            lines.append(f"  {label:<14} {text}")
            if detail:
                lines.append(f"  {'':<14}   {detail}")

        total_s = sum(f.seconds for f in usable)
        row("files", f"{len(self.files)} audio files: {len(usable)} usable, {len(self.unusable)} unusable")
        row("duration", f"{total_s / 3600:.2f} h ({total_s / 60:.1f} min) of usable audio")
        if self.missing:
            row("missing", f"{len(self.missing)} listed files do not exist (left out)")
        if usable:
            rates = Counter(f.header.sampling_rate for f in usable)
            parts = []
            for r, n in sorted(rates.items()):
                note = "" if r == rate else f" (resampled to {rate} Hz on load)"
                parts.append(f"{r} Hz: {n}{note}")
            row("sample rates", "; ".join(parts))
            channels = Counter(f.header.channels for f in usable)
            row("channels", "; ".join(
                f"{'mono' if c == 1 else f'{c} channels (averaged to mono)'}: {n}"
                for c, n in sorted(channels.items())
            ))
            encodings = Counter(f"{f.header.format} {f.header.subtype}" for f in usable)
            row("encodings", "; ".join(f"{e}: {n}" for e, n in encodings.most_common()))
            seconds = [f.seconds for f in usable]
            row("durations", f"min {min(seconds):.2f} s, median {statistics.median(seconds):.2f} s, "
                f"max {max(seconds):.1f} s")
            segment = self.config.training.segment_size
            short = self.short
            row("short", f"{len(short)} shorter than a training segment ({segment} samples = "
                f"{segment / rate:.2f} s at {rate} Hz), zero-padded in training",
                self._names(short) if short else "")
            silent = self.silent
            row("silent", f"{len(silent)} with peak below {SILENCE_PEAK_DB:.0f} dBFS"
                + (" (training still normalises them to 0.95 peak)" if silent else ""),
                self._names(silent) if silent else "")
            clipping = self.clipping
            row("clipping", f"{len(clipping)} with {CLIP_MIN_SAMPLES} or more samples at full scale",
                self._names(clipping) if clipping else "")
        row("checked in", f"{self.elapsed:.1f} s ({self.workers} thread{'s' if self.workers > 1 else ''})")
        unusable = self.unusable
        if unusable:
            lines.append(f"Unusable files ({len(unusable)}), left out of the lists:")
            width = min(48, max(len(self.display(f.path)) for f in unusable))
            for f in unusable:
                lines.append(f"  {self.display(f.path):<{width}}  {f.problem}")
        else:
            lines.append("Unusable files: none")
        if self.rejected:
            lines.append(f"List lines left out ({len(self.rejected)}):")
            lines.extend(f"  {r}" for r in self.rejected)
        notes = [(self.display(f.path), text) for f in self.warned for text in f.warnings]
        if notes:
            lines.append(f"Warnings ({len(notes)}):")
            width = min(48, max(len(name) for name, _ in notes))
            lines.extend(f"  {name:<{width}}  {text}" for name, text in notes)
        return "\n".join(lines)


def inspect_corpus(
    data: Union[PathLike, Corpus],
    config: Union[str, Path, HiFiGANConfig, None] = None,
    workers: Optional[int] = None,
    progress: bool = True,
) -> CorpusReport:
    """Decode and check every file of a corpus (any layout `load_splits` accepts)."""
    config = resolve_config(config)
    corpus = data if isinstance(data, Corpus) else read_corpus(data)
    workers = workers or default_workers()
    start = time.perf_counter()
    reports = _parallel(lambda p: inspect_file(p, config.audio), corpus.files, workers, progress, "checking")
    for report in reports:
        reason = unlistable_reason(report.path) if report.usable else None
        if reason:
            report.problem = reason
    return CorpusReport(
        root=corpus.root or Path.cwd(),
        description=corpus.description,
        files=reports,
        config=config,
        elapsed=time.perf_counter() - start,
        workers=workers,
        missing=list(corpus.missing),
        rejected=list(corpus.rejected),
    )


@dataclass
class PrepareResult:
    report: CorpusReport
    splits: Optional[DataSplits] = None
    train_list: Optional[Path] = None
    val_list: Optional[Path] = None
    resampled: int = 0


def _usable_only(corpus: Corpus, usable: set[Path]) -> Corpus:
    keep = lambda files: None if files is None else [f for f in files if f in usable]  # noqa: E731
    return Corpus(
        files=keep(corpus.files), description=corpus.description, train=keep(corpus.train),
        val=keep(corpus.val), missing=corpus.missing, root=corpus.root, rejected=corpus.rejected,
    )


def check_out_folder(out: Path) -> None:
    """Refuse, before any file is read, an --out that cannot take the lists: a file, a
    folder under a file, or a folder (or the nearest existing one above it) not writable."""
    shown = printable_path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{shown}: --out must be a folder, and this is a file")
    existing = out
    while not existing.is_dir():
        if existing.exists():
            raise DataError(f"{shown}: cannot create the output folder ({printable_path(existing)} is a file)")
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".hifigan-prepare-", suffix=".tmp", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = "there" if existing == out else f"in {printable_path(existing)}"
        raise DataError(f"{shown}: cannot write the lists {where} ({exc.strerror or exc})") from None


def _copy_targets(files: list[Path], target_dir: Path) -> dict[Path, Path]:
    """Source -> its copy under `target_dir` (sub-folders kept); DataError when a copy would
    replace a corpus file or two sources would share one copy."""
    common = Path(os.path.commonpath([str(f.parent) for f in files]))
    targets = {path: target_dir / path.relative_to(common).with_suffix(".wav") for path in files}
    sources = {_file_id(path) for path in files}
    seen: dict[Path, Path] = {}
    for path, target in targets.items():
        if target in seen:
            raise DataError(
                f"{printable_path(target)}: {printable_path(seen[target])} and {printable_path(path)} "
                "would both be resampled to this one copy; rename one of them"
            )
        seen[target] = path
        if target.exists() and _file_id(target) in sources:
            raise DataError(
                f"{printable_path(target_dir)}: --resample-to would write the copies over the originals "
                f"(first: {printable_path(target)}); choose an --out outside the corpus's audio folder"
            )
    return targets


def _file_id(path: Path) -> tuple[int, int]:
    """The same file under any name (a symlink, a second path) has the same id."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def _resample_copies(
    files: list[Path], out: Path, rate: int, workers: int, progress: bool
) -> dict[Path, Path]:
    """Write each file resampled to `rate` as 16-bit WAV under out/wavs/, keeping sub-folders
    (save_audio writes each atomically and says in a DataError why it cannot)."""
    targets = _copy_targets(files, out / RESAMPLED_DIR)

    def convert(path: Path) -> tuple[Path, Path]:
        samples = load_audio(path, rate, warn=False).samples  # its warnings are in the report already
        save_audio(targets[path], samples, rate)
        return path, targets[path]

    return dict(_parallel(convert, files, workers, progress, f"resampling to {rate} Hz"))


def _unusable_bytes(unusable: Sequence[FileReport]) -> bytes:
    """`path|reason` lines, the path as the file name's own bytes (like the lists)."""
    return b"".join(
        os.fsencode(f.path.as_posix()) + b"|" + str(f.problem).encode("utf-8", "backslashreplace") + b"\n"
        for f in unusable
    )


def prepare_corpus(
    data: PathLike,
    out: Optional[PathLike] = None,
    config: Union[str, Path, HiFiGANConfig, None] = None,
    val: Optional[PathLike] = None,
    validation_size: Union[int, float, None] = None,
    seed: int = 1234,
    resplit: bool = False,
    resample_to: Optional[int] = None,
    workers: Optional[int] = None,
    progress: bool = True,
) -> PrepareResult:
    """Check `data`; with `out`, write `train.txt` / `val.txt` of its usable files there.

    `resample_to` (Hz) also writes the files resampled to that rate under
    `out/wavs/` and points the lists at those copies. Unusable files are listed
    in `out/unusable.txt` (`path|reason`).
    """
    config = resolve_config(config)
    workers = workers or default_workers()
    if out is not None:
        out = normalise_path(out)
        check_out_folder(out)
    if resample_to is not None and resample_to <= 0:
        raise DataError(f"--resample-to must be a positive rate in Hz, got {resample_to}")
    corpus = read_corpus(data)
    report = inspect_corpus(corpus, config, workers, progress)
    result = PrepareResult(report=report)
    if out is None:
        return result
    usable = {f.path for f in report.usable}
    if not usable:
        raise DataError(f"{normalise_path(data)}: no usable audio files, no lists written")
    splits = split_corpus(_usable_only(corpus, usable), val=val, validation_size=validation_size,
                          seed=seed, resplit=resplit)
    if resample_to is not None:
        copies = _resample_copies(splits.train + splits.val, out, int(resample_to), workers, progress)
        splits = DataSplits(
            train=[copies[f] for f in splits.train], val=[copies[f] for f in splits.val],
            source=f"{splits.source}, resampled to {resample_to} Hz", missing=splits.missing,
        )
        result.resampled = len(copies)
    train_list, val_list, unusable_path = out / TRAIN_LIST, out / VAL_LIST, out / UNUSABLE_LIST
    contents = {
        train_list: file_list_bytes(train_list, splits.train),
        val_list: file_list_bytes(val_list, splits.val),
    }
    if report.unusable:
        contents[unusable_path] = _unusable_bytes(report.unusable)
    write_files_atomic(contents)
    if not report.unusable and unusable_path.exists():
        unusable_path.unlink()  # from an earlier run: it would describe files no longer there
    result.train_list, result.val_list = train_list, val_list
    result.splits = splits
    return result
