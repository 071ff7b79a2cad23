"""`HiFiGANDataModule`: the Lightning side of the data pipeline.

Before the first batch it reads every file's header (a fraction of a second
per thousand files): unusable files are left out with a warning each, the
resampling and downmixing that loading will do are said once, and fine-tuning
pairs are matched and length-checked. A corpus with no usable audio, or with
more than `max_failure_fraction` bad files, stops here with a DataError
(`hifigan train --max-bad-fraction` sets it; 5% by default).

During training a file that still fails to load (NaN samples, a bad mel
file...) is replaced by another, warned about once by name, and counted in the
main process across all workers; when the estimated fraction of unusable
files (those left out plus those failing, each counted once) passes
`max_failure_fraction` (judged after `min_attempts` loads) training stops with a
DataError naming the first bad files.

Shuffling is seeded and changes every epoch: the training sampler is a
DistributedSampler (EpochKeyedSampler: keys carry the epoch, which seeds each
item's crop) built here from the trainer's world size and rank (one
replica without a trainer), so Lightning keeps it and calls its `set_epoch`.
"""
from __future__ import annotations

import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from ..config import AudioConfig, HiFiGANConfig
from ..errors import DataError
from .dataset import EpochKeyedSampler, VocoderDataset, collate
from .lists import DataSplits
from .pairs import scan_pairs
from .probe import AudioHeader, UnusableAudio, read_header

DEFAULT_MAX_FAILURE_FRACTION = 0.05
DEFAULT_MIN_ATTEMPTS = 50


class SkippedFileWarning(UserWarning):
    """An audio (or mel) file could not be used and was skipped."""


def _shorten(items: Sequence[str], limit: int = 5) -> str:
    text = "; ".join(items[:limit])
    return text + (f"; and {len(items) - limit} more" if len(items) > limit else "")


class FailureTracker:
    """Counts unusable files (in the main process) and stops when too many are.

    Each file counts once: files the header scan left out are known for the
    whole list, files that fail to load during training for the loads tried so
    far. The estimated fraction of unusable files is (left out + load failure
    rate x the rest) / all files, exact once every file was loaded; successful
    loads are capped at the number of good files, so a second epoch does not
    dilute it. Load failures are judged only after `min_attempts` loads.
    """

    def __init__(self, total_files: int, max_fraction: float, min_attempts: int, what: str) -> None:
        self.total_files = total_files
        self.max_fraction = max_fraction
        self.min_attempts = min_attempts
        self.what = what
        self.failed: dict[str, str] = {}  # every unusable file so far -> why
        self.left_out: set[str] = set()  # those the header scan found, before training
        self.loaded = 0

    def add(self, loaded: int, failures: Sequence[tuple[str, str]] = ()) -> None:
        self.loaded += loaded
        for path, reason in failures:
            if path in self.failed:
                continue
            self.failed[path] = reason
            warnings.warn(
                f"skipped {path}: {reason} ({len(self.failed)} {self.what} file"
                f"{'s' if len(self.failed) != 1 else ''} skipped so far)",
                SkippedFileWarning,
                stacklevel=2,
            )

    def leave_out(self, problems: Sequence[tuple[str, str]]) -> None:
        """Files the header scan found unusable: warned about, never loaded, judged at once."""
        self.add(0, problems)
        self.left_out.update(path for path, _ in problems)
        self._stop_if_too_many(self.fraction)

    @property
    def load_failures(self) -> int:
        return len(self.failed) - len(self.left_out)

    @property
    def attempts(self) -> int:
        """Loads tried in training (each failed file once)."""
        good = max(0, self.total_files - len(self.failed))
        return self.load_failures + min(self.loaded, good)

    @property
    def fraction(self) -> float:
        """Estimated fraction of the list that is unusable (see the class doc)."""
        if not self.total_files:
            return 0.0
        rate = self.load_failures / self.attempts if self.attempts else 0.0
        rest = self.total_files - len(self.left_out)
        return (len(self.left_out) + rate * rest) / self.total_files

    def check(self) -> None:
        if not self.load_failures or self.attempts < min(self.min_attempts, self.total_files - len(self.left_out)):
            return
        self._stop_if_too_many(self.fraction)

    def _stop_if_too_many(self, fraction: float) -> None:
        if fraction <= self.max_fraction:
            return
        parts = []
        if self.left_out:
            parts.append(f"{len(self.left_out)} of {self.total_files} by the header scan")
        if self.load_failures:
            parts.append(f"{self.load_failures} of {self.attempts} loaded in training")
        first = [f"{path}: {reason}" for path, reason in self.failed.items()]
        raise DataError(
            f"{self.what} files could not be loaded: {' and '.join(parts)} (about {fraction:.1%} of the "
            f"{self.total_files} files, more than max_failure_fraction {self.max_fraction:.0%}; "
            f"--max-bad-fraction raises it): {_shorten(first)}. Run `hifigan prepare` on the data to "
            "list every unusable file."
        )


class CheckedDataLoader(DataLoader):
    """A DataLoader that takes the batches' `skipped` entries to its FailureTracker."""

    def __init__(self, *args: Any, failures: FailureTracker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures = failures

    def __iter__(self) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        for batch in super().__iter__():
            self.failures.add(len(batch["name"]), batch.pop("skipped", []))
            self.failures.check()
            yield batch


@dataclass
class DataReport:
    """What the DataModule found in its files before training."""

    sampling_rate: int
    train_files: int = 0
    val_files: int = 0
    source: str = ""
    rates: Counter = field(default_factory=Counter)  # original rate -> files
    multichannel: Counter = field(default_factory=Counter)  # channels -> files
    left_out: dict[str, str] = field(default_factory=dict)  # path -> reason
    trimmed_pairs: int = 0
    fine_tuning: bool = False

    @property
    def resampled(self) -> dict[int, int]:
        return {rate: n for rate, n in sorted(self.rates.items()) if rate != self.sampling_rate}

    def messages(self) -> list[str]:
        source = f" ({self.source})" if self.source else ""
        lines = [f"data: {self.train_files} training and {self.val_files} validation files{source}"]
        if self.resampled:
            rates = ", ".join(f"{n} at {rate} Hz" for rate, n in self.resampled.items())
            total = sum(self.resampled.values())
            lines.append(
                f"data: {total} of {sum(self.rates.values())} files are resampled to "
                f"{self.sampling_rate} Hz on load (soxr HQ): {rates}"
            )
        if self.multichannel:
            parts = ", ".join(f"{n} with {ch} channels" for ch, n in sorted(self.multichannel.items()))
            lines.append(f"data: multi-channel files are averaged to mono: {parts}")
        if self.left_out:
            lines.append(f"data: {len(self.left_out)} unusable files left out (warned above)")
        if self.trimmed_pairs:
            lines.append(
                f"data: {self.trimmed_pairs} mel files are 1-2 frames longer or shorter than their "
                "audio; each such pair is trimmed to the common length"
            )
        return lines


def scan_headers(
    files: Sequence[Path], audio: AudioConfig, threads: int = 4
) -> tuple[dict[Path, AudioHeader], dict[Path, str]]:
    """Headers of usable files, and the reason for each unusable one."""

    def probe(path: Path) -> tuple[Path, Any]:
        try:
            return path, read_header(path, audio)
        except UnusableAudio as exc:
            return path, exc.reason

    if len(files) > 256 and threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(probe, files))
    else:
        results = [probe(path) for path in files]
    headers = {p: r for p, r in results if isinstance(r, AudioHeader)}
    problems = {p: r for p, r in results if isinstance(r, str)}
    return headers, problems


class HiFiGANDataModule(LightningDataModule):
    """Training crops and whole-utterance validation for a HiFi-GAN run (see the module doc).

    Batches: `mel` [B, n_mels, F] (generator input; from `mel_dir` files when
    fine-tuning), `audio` [B, 1, F*hop], `mel_loss` [B, n_mels, F], `name`.
    Training F = segment_size // hop; validation is one whole utterance.
    """

    def __init__(
        self,
        config: HiFiGANConfig,
        splits: DataSplits,
        mel_dir: Optional[Path] = None,
        batch_size: Optional[int] = None,
        num_workers: Optional[int] = None,
        seed: Optional[int] = None,
        pin_memory: Optional[bool] = None,
        max_failure_fraction: float = DEFAULT_MAX_FAILURE_FRACTION,
        min_attempts: int = DEFAULT_MIN_ATTEMPTS,
    ) -> None:
        super().__init__()
        self.config = config.validate()
        self.splits = splits
        self.mel_dir = Path(mel_dir) if mel_dir is not None else None
        self.batch_size = int(batch_size if batch_size is not None else config.training.batch_size)
        self.num_workers = int(num_workers if num_workers is not None else config.training.num_workers)
        self.seed = int(seed if seed is not None else config.training.seed)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        if not 0.0 <= max_failure_fraction < 1.0:
            raise DataError(f"max_failure_fraction must lie in [0, 1), got {max_failure_fraction}")
        if self.batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {self.batch_size}")
        self.max_failure_fraction = max_failure_fraction
        self.min_attempts = min_attempts
        self.report: Optional[DataReport] = None
        self.train_dataset: Optional[VocoderDataset] = None
        self.val_dataset: Optional[VocoderDataset] = None
        self.train_failures: Optional[FailureTracker] = None
        self.val_failures: Optional[FailureTracker] = None
        self._headers: dict[Path, AudioHeader] = {}

    # ---- setup: headers, pairs, the report -------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        if self.report is not None:
            return
        audio = self.config.audio
        report = DataReport(
            sampling_rate=audio.sampling_rate, source=self.splits.source, fine_tuning=self.mel_dir is not None
        )
        train, self.train_failures = self._usable(self.splits.train, "training", report)
        val, self.val_failures = self._usable(self.splits.val, "validation", report)
        if not train:
            raise DataError(
                f"no usable training audio: all {len(self.splits.train)} training files are "
                f"unusable ({_shorten([f'{p}: {r}' for p, r in report.left_out.items()], 3)})"
            )
        if self.mel_dir is not None:
            scan = scan_pairs(train + val, self._headers, self.mel_dir, audio)
            if scan.problems:
                raise DataError(
                    f"fine-tuning pairs: {len(scan.problems)} problems: {_shorten(scan.problems)}"
                )
            report.trimmed_pairs = scan.trimmed
        report.train_files, report.val_files = len(train), len(val)
        self.train_dataset = VocoderDataset(train, self.config, train=True, mel_dir=self.mel_dir, seed=self.seed)
        self.val_dataset = (
            VocoderDataset(val, self.config, train=False, mel_dir=self.mel_dir, seed=self.seed) if val else None
        )
        self.report = report
        for line in report.messages():
            rank_zero_info(line)

    def _usable(self, files: Sequence[Path], what: str, report: DataReport) -> tuple[list[Path], FailureTracker]:
        headers, problems = scan_headers(list(files), self.config.audio)
        self._headers.update(headers)
        tracker = FailureTracker(len(files), self.max_failure_fraction, self.min_attempts, what)
        report.left_out.update({str(p): r for p, r in problems.items()})
        for header in headers.values():
            report.rates[header.sampling_rate] += 1
            if header.channels > 1:
                report.multichannel[header.channels] += 1
        if headers:  # none usable: setup says so for the whole list
            tracker.leave_out([(str(p), r) for p, r in problems.items()])
        else:
            tracker.add(0, [(str(p), r) for p, r in problems.items()])
        return [p for p in files if p in headers], tracker

    # ---- loaders -----------------------------------------------------------------
    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None:
            return int(trainer.world_size), int(trainer.global_rank)
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def train_dataloader(self) -> CheckedDataLoader:
        self.setup("fit")
        assert self.train_dataset is not None and self.train_failures is not None
        world, rank = self._world()
        per_device = -(-len(self.train_dataset) // world)
        if per_device < self.batch_size:
            raise DataError(
                f"{len(self.train_dataset)} usable training files give {per_device} per device "
                f"({world} devices), fewer than one batch of {self.batch_size}"
            )
        sampler = EpochKeyedSampler(
            self.train_dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed
        )
        return CheckedDataLoader(
            self.train_dataset,
            failures=self.train_failures,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=True,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed + rank),
        )

    def val_dataloader(self) -> CheckedDataLoader | list:
        self.setup("validate")
        if self.val_dataset is None or self.val_failures is None:
            return []
        return CheckedDataLoader(
            self.val_dataset,
            failures=self.val_failures,
            batch_size=1,
            shuffle=False,
            num_workers=min(self.num_workers, 2),
            pin_memory=self.pin_memory,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
        )
