"""Synthesis of many files: what `hifigan synthesize` runs.

All inputs are loaded and checked first (a bad file stops the run before any
work, naming the file), and so are the outputs: the folder must be writable, no
output may replace an input, and none may exist already unless `overwrite`.
Then mels are sorted by length and synthesized in
batches with exact per-item results (`Vocoder.__call__` with a list), very long
ones alone (the Vocoder runs those through the exact streaming path in bounded
memory); each output is written
as it is ready. The summary's real-time factor counts synthesis time only
(generator and denoiser), not file reading or writing.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import torch

from ..audio import load_audio, save_audio
from ..errors import DataError
from .inputs import SynthesisInput, collect_inputs, load_mel_file
from .vocoder import CHUNK_FRAMES, NonFiniteAudio, Vocoder

# Mels longer than this (frames; ~46 s at 22.05 kHz / 256) are synthesized alone, in chunks.
MAX_BATCH_FRAMES = CHUNK_FRAMES


@dataclass
class PreparedInput:
    """An input's mel, ready for the generator."""

    source: SynthesisInput
    mel: torch.Tensor  # [n_mels, frames], CPU

    @property
    def frames(self) -> int:
        return int(self.mel.shape[-1])


@dataclass
class SynthesisSummary:
    files: int = 0
    audio_seconds: float = 0.0
    synthesis_seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)

    @property
    def real_time_factor(self) -> float:
        """Synthesis time / audio duration: below 1 is faster than real time."""
        return self.synthesis_seconds / self.audio_seconds if self.audio_seconds else float("nan")


def bundled_samples() -> Path:
    """The folder of short sample clips shipped with the package (license in its LICENSE.md)."""
    return Path(str(resources.files("hifigan") / "assets" / "samples"))


def prepare_inputs(vocoder: Vocoder, inputs: Iterable[SynthesisInput]) -> list[PreparedInput]:
    """Load every input as the mel the generator takes (audio: its mel at the model's rate)."""
    prepared = []
    for item in inputs:
        if item.kind == "mel":
            mel = load_mel_file(item.path, vocoder.config.audio)
        else:
            audio = load_audio(item.path, vocoder.sampling_rate)
            try:
                mel = vocoder.mel(audio.samples).cpu()
            except DataError as exc:
                raise DataError(f"{item.path}: {exc}") from None
        prepared.append(PreparedInput(item, mel))
    return prepared


def output_paths(item: SynthesisInput, out_dir: Path, plot: bool = False) -> list[Path]:
    """Where an input's audio (and, with `plot`, its figure) is written."""
    return [out_dir / f"{item.name}.wav"] + ([out_dir / f"{item.name}.png"] if plot else [])


def check_outputs(items: Sequence[SynthesisInput], out_dir: Union[str, Path], *, plot: bool = False,
                  overwrite: bool = False) -> Path:
    """Before any synthesis: a writable output folder (created), no output that is an input file,
    and none that exists already unless `overwrite`. DataError naming the file otherwise."""
    out_dir = _writable_folder(Path(out_dir))
    inputs = {_file_id(item.path) for item in items}
    for item in items:
        for path in output_paths(item, out_dir, plot):
            if not path.exists():
                continue
            if _file_id(path) in inputs:
                raise DataError(f"{path} is an input file: writing its synthesized audio there would destroy "
                                "it; choose another --out")
            if path.is_dir():
                raise DataError(f"{path} is a folder, where an output file would go")
            if not overwrite:
                raise DataError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    return out_dir


def _writable_folder(out_dir: Path) -> Path:
    """`out_dir`, created if missing, after a test file was made and removed in it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output folder {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".hifigan-write-test-", dir=out_dir)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(f"output folder {out_dir} cannot be written ({exc.strerror or exc})") from None
    return out_dir


def _file_id(path: Path) -> tuple[int, int]:
    """The file behind a path (through links): the same id means writing one overwrites the other."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def synthesize_files(
    vocoder: Vocoder,
    inputs: Union[Iterable[SynthesisInput], Iterable[Union[str, Path]]],
    out_dir: Union[str, Path],
    *,
    batch_size: int = 8,
    subtype: str = "PCM_16",
    plot: bool = False,
    progress: bool = True,
    max_batch_frames: int = MAX_BATCH_FRAMES,
    prepared: Optional[list[PreparedInput]] = None,
    overwrite: bool = False,
) -> SynthesisSummary:
    """Synthesize every input into `out_dir/<name>.wav` (and `<name>.png` with `plot`).

    Refuses (before any work) to write over an input, or over an existing output unless `overwrite`.
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    if prepared is None:
        items = list(inputs)
        if items and not isinstance(items[0], SynthesisInput):
            items = collect_inputs(items)
    else:
        items = [p.source for p in prepared]
    out_dir = check_outputs(items, out_dir, plot=plot, overwrite=overwrite)
    if prepared is None:
        prepared = prepare_inputs(vocoder, items)
    summary = SynthesisSummary()
    ordered = sorted(prepared, key=lambda p: p.frames)
    long = [p for p in ordered if p.frames > max_batch_frames]
    short = [p for p in ordered if p.frames <= max_batch_frames]
    batches = [short[i:i + batch_size] for i in range(0, len(short), batch_size)] + [[p] for p in long]

    from tqdm.auto import tqdm

    bar = tqdm(total=len(prepared), unit="file", desc="synthesize", disable=not progress)
    try:
        for batch in batches:
            started = time.perf_counter()
            try:  # a long mel is synthesized alone, window by window (`Vocoder.chunk_frames`)
                audios = vocoder([p.mel for p in batch])
            except NonFiniteAudio as exc:  # name the input file, not its place in the batch
                raise DataError(f"{batch[exc.index].source.path}: {exc.reason}") from None
            summary.synthesis_seconds += time.perf_counter() - started
            for item, audio in zip(batch, audios):
                _write(vocoder, item, audio, out_dir, subtype, plot, summary)
                bar.update(1)
    finally:
        bar.close()
    return summary


def _write(vocoder: Vocoder, item: PreparedInput, audio: torch.Tensor, out_dir: Path, subtype: str,
           plot: bool, summary: SynthesisSummary) -> None:
    wav, figure_path = output_paths(item.source, out_dir, plot=True)
    path = save_audio(wav, audio, vocoder.sampling_rate, subtype=subtype)
    summary.outputs.append(path)
    summary.files += 1
    summary.audio_seconds += audio.numel() / vocoder.sampling_rate
    if plot and audio.numel() >= vocoder.mel_spectrogram.min_samples:
        from ..plotting import save_figure, spectrogram_figure

        output_mel = vocoder.mel(audio).cpu()
        figure = spectrogram_figure(
            [item.mel, output_mel],
            [f"input mel ({item.source.kind}: {item.source.path.name})", "mel of the synthesized audio"],
            columns=True,
            frame_seconds=vocoder.hop_length / vocoder.sampling_rate,
        )
        summary.plots.append(save_figure(figure, figure_path))
