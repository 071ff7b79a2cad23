"""`hifigan prepare`: check a corpus before training, write its lists, resample it.

Every file is decoded once (threads: libsndfile and soxr release the GIL) and
summarised: duration, sample rates, channels, encodings, files shorter than a
training segment, silent files, clipping, and the unusable files with the
reason each. With `out`, the usable files are split (the corpus's own split,
or a seeded one) into `train.txt` / `val.txt` there, optionally pointing at
copies resampled to the model's rate.
"""
from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar, Union

from tqdm.auto import tqdm

from ..audio import load_audio, save_audio
from ..config import HiFiGANConfig, resolve_config
from ..errors import DataError
from .lists import (
    TRAIN_LIST,
    VAL_LIST,
    Corpus,
    DataSplits,
    PathLike,
    normalise_path,
    read_corpus,
    split_corpus,
    write_file_list,
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

    def display(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _names(self, reports: Sequence[FileReport], limit: int = 4) -> str:
        names = ", ".join(self.display(r.path) for r in reports[:limit])
        return names + (f", and {len(reports) - limit} more" if len(reports) > limit else "")

    def summary(self) -> str:
        audio = self.config.audio
        rate = audio.sampling_rate
        usable = self.usable
        lines = [f"Corpus {self.root} ({self.description})"]

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
    return CorpusReport(
        root=corpus.root or Path.cwd(),
        description=corpus.description,
        files=reports,
        config=config,
        elapsed=time.perf_counter() - start,
        workers=workers,
        missing=list(corpus.missing),
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
        val=keep(corpus.val), missing=corpus.missing, root=corpus.root,
    )


def _resample_copies(
    files: list[Path], out: Path, rate: int, workers: int, progress: bool
) -> dict[Path, Path]:
    """Write each file resampled to `rate` as 16-bit WAV under out/wavs/, keeping sub-folders."""
    common = Path(os.path.commonpath([str(f.parent) for f in files]))
    target_dir = out / RESAMPLED_DIR

    def convert(path: Path) -> tuple[Path, Path]:
        target = target_dir / path.relative_to(common).with_suffix(".wav")
        samples = load_audio(path, rate).samples
        save_audio(target, samples, rate)
        return path, target

    return dict(_parallel(convert, files, workers, progress, f"resampling to {rate} Hz"))


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
    out = normalise_path(out)
    out.mkdir(parents=True, exist_ok=True)
    if resample_to is not None:
        if resample_to <= 0:
            raise DataError(f"--resample-to must be a positive rate in Hz, got {resample_to}")
        copies = _resample_copies(splits.train + splits.val, out, int(resample_to), workers, progress)
        splits = DataSplits(
            train=[copies[f] for f in splits.train], val=[copies[f] for f in splits.val],
            source=f"{splits.source}, resampled to {resample_to} Hz", missing=splits.missing,
        )
        result.resampled = len(copies)
    result.train_list = write_file_list(out / TRAIN_LIST, splits.train)
    result.val_list = write_file_list(out / VAL_LIST, splits.val)
    unusable_path = out / UNUSABLE_LIST
    if report.unusable:
        unusable_path.write_text(
            "".join(f"{f.path.as_posix()}|{f.problem}\n" for f in report.unusable), encoding="utf-8"
        )
    elif unusable_path.exists():
        unusable_path.unlink()
    result.splits = splits
    return result
