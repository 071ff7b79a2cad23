"""The vocoder dataset: random training crops or whole validation utterances.

As the authors' recipe: training audio is peak-normalised to 0.95 and cropped
to `segment_size` samples at a random start (zero-padded on the right when the
clip is shorter); the generator's mel (`fmax`) and the loss mel
(`fmax_for_loss`) are computed from that crop. Validation items are whole
utterances: both mels from the whole clip, the audio trimmed to frames * hop.
Fine-tuning items take the generator's mel from a file and keep the audio's
level; mel and audio are cropped in step.

A file that fails to load is replaced by another one (so batches stay full)
and reported in the item's `skipped` list; the DataModule counts those in the
main process, warns once per file and stops when too many fail.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from ..audio import MelSpectrogram, load_audio
from ..audio.mel import LOG_CLAMP
from ..config import HiFiGANConfig
from ..errors import DataError
from .pairs import align_pair, load_mel, mel_path_for
from .probe import UnusableAudio, read_header, too_short_reason

PEAK = 0.95  # the authors' training level: audio * 0.95 / max|audio|
SILENT_MEL = float(torch.log(torch.tensor(LOG_CLAMP)))  # the log-mel of zeros
# errors that mean "this file is bad", not "the code is wrong"
LOAD_ERRORS = (DataError, OSError, RuntimeError, ValueError, EOFError)


def peak_normalise(audio: torch.Tensor, peak: float = PEAK) -> torch.Tensor:
    """Scale to `peak` at the loudest sample; silence (all zeros) stays as it is.

    As the authors' loader, to the bit: in float64, `audio / max|audio| * peak`
    (their `librosa.util.normalize(audio) * 0.95` on the float64 samples), then
    rounded once to the input's dtype.
    """
    wide = audio.to(torch.float64)
    top = wide.abs().max()
    if top <= 0:
        return audio
    return (wide / top * peak).to(audio.dtype)


def crop_or_pad(audio: torch.Tensor, segment: int, generator: torch.Generator) -> torch.Tensor:
    """A random `segment`-sample crop, or the clip right-padded with zeros when shorter."""
    length = audio.shape[-1]
    if length >= segment:
        start = int(torch.randint(0, length - segment + 1, (1,), generator=generator))
        return audio[start : start + segment]
    return torch.nn.functional.pad(audio, (0, segment - length))


def crop_pair(
    mel: torch.Tensor, audio: torch.Tensor, frames: int, hop: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop aligned mel [n_mels, F] and audio [F*hop] in step to `frames` frames, or pad both.

    Padding extends the audio with zeros and the mel with the log-mel of zeros
    (the authors pad the mel with 0, i.e. a loud frame, next to silent audio).
    """
    available = mel.shape[-1]
    if available >= frames:
        start = int(torch.randint(0, available - frames + 1, (1,), generator=generator))
        return mel[:, start : start + frames], audio[start * hop : (start + frames) * hop]
    mel = torch.nn.functional.pad(mel, (0, frames - available), value=SILENT_MEL)
    audio = torch.nn.functional.pad(audio, (0, frames * hop - audio.shape[-1]))
    return mel, audio


class VocoderDataset(Dataset):
    """Items {mel, audio, mel_loss, name, skipped} for training (`train=True`) or validation."""

    def __init__(
        self,
        files: Sequence[Path],
        config: HiFiGANConfig,
        train: bool,
        mel_dir: Optional[Path] = None,
        seed: int = 1234,
        max_tries: int = 20,
    ) -> None:
        if not files:
            raise DataError("the dataset has no audio files")
        self.files = [Path(f) for f in files]
        self.audio_config = config.audio
        self.segment_size = config.training.segment_size
        self.hop = config.audio.hop_length
        if self.segment_size % self.hop:
            raise DataError(
                f"segment_size {self.segment_size} is not a multiple of the hop {self.hop}"
            )
        self.train = train
        self.mel_dir = Path(mel_dir) if mel_dir is not None else None
        self.seed = seed
        self.max_tries = max_tries
        self.mel = MelSpectrogram.from_config(config.audio)
        self.mel_for_loss = MelSpectrogram.from_config(config.audio, for_loss=True)
        self.bad: dict[int, str] = {}  # per process: indices known to fail

    def __len__(self) -> int:
        return len(self.files)

    @property
    def fine_tuning(self) -> bool:
        return self.mel_dir is not None

    # ---- randomness: a function of (seed, epoch, index), see EpochKeyedSampler
    def item_generator(self, epoch: int, index: int) -> torch.Generator:
        state = np.random.SeedSequence([self.seed, epoch, index]).generate_state(2, np.uint64)
        return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))

    # ---- one file -> one item (raises for a bad file)
    @torch.no_grad()
    def load_item(self, index: int, generator: Optional[torch.Generator] = None) -> dict[str, Any]:
        path = self.files[index]
        generator = generator or self.item_generator(0, index)
        read_header(path)  # the reasons `hifigan prepare` gives: empty, not audio, unreadable
        audio = torch.from_numpy(load_audio(path, self.audio_config.sampling_rate).samples)
        reason = too_short_reason(audio.shape[-1], self.audio_config)
        if reason:
            raise UnusableAudio(path, reason)
        if self.fine_tuning:
            mel, audio = self._pair(path, audio, generator)
        else:
            audio = peak_normalise(audio)
            if self.train:
                audio = crop_or_pad(audio, self.segment_size, generator)
            # frame i stands for samples [i * hop, (i + 1) * hop); a centred front end's extra frame goes
            mel = self.mel(audio)[0][:, : audio.shape[-1] // self.hop]
        mel_loss = self.mel_for_loss(audio)[0]  # validation: of the whole clip, as the mel
        frames = mel.shape[-1]
        return {
            "mel": mel,
            "audio": audio[: frames * self.hop],
            "mel_loss": mel_loss[:, :frames],
            "name": path.stem,
        }

    def _pair(self, path: Path, audio: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.mel_dir is not None
        mel_path = mel_path_for(path, self.mel_dir)
        if mel_path is None:
            raise UnusableAudio(path, f"no mel file {path.stem}.npy or {path.stem}.pt in {self.mel_dir}")
        try:
            mel = load_mel(mel_path, self.audio_config.n_mels)
        except UnusableAudio as exc:
            raise UnusableAudio(path, f"mel file {exc}") from None
        mel, audio, _ = align_pair(mel, audio, self.hop, path, mel_path)
        if self.train:
            mel, audio = crop_pair(mel, audio, self.segment_size // self.hop, self.hop, generator)
        return mel, audio

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """`key` is an index, or (epoch, index) from EpochKeyedSampler."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        generator = self.item_generator(epoch, index)
        skipped: list[tuple[str, str]] = []
        tries = 0
        while True:
            if index not in self.bad:
                tries += 1
                try:
                    item = self.load_item(index, generator)
                except LOAD_ERRORS as exc:
                    reason = exc.reason if isinstance(exc, UnusableAudio) else _reason(exc, self.files[index])
                    self.bad[index] = reason
                    skipped.append((str(self.files[index]), reason))
                else:
                    item["skipped"] = skipped
                    return item
            replacement = self._replacement(index, generator)
            if replacement is None or tries >= self.max_tries:
                last = self.files[index]
                raise DataError(
                    f"{tries} files in a row failed to load (the last: {last}: {self.bad[index]}); "
                    f"{len(self.bad)} of {len(self.files)} files are bad. Run `hifigan prepare` on "
                    "the data to list every unusable file."
                )
            index = replacement

    def _replacement(self, index: int, generator: torch.Generator) -> Optional[int]:
        """Another file not known to be bad: random for training, the next one for validation."""
        good = len(self.files) - len(self.bad)
        if good <= 0:
            return None
        if self.train:
            pick = int(torch.randint(0, good, (1,), generator=generator))
            return [i for i in range(len(self.files)) if i not in self.bad][pick]
        for step in range(1, len(self.files) + 1):
            candidate = (index + step) % len(self.files)
            if candidate not in self.bad:
                return candidate
        return None


def _reason(exc: BaseException, path: Path) -> str:
    text = str(exc).strip() or type(exc).__name__
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else f"{type(exc).__name__}: {text.splitlines()[0]}"


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into the batch contract: mel [B, n_mels, F], audio [B, 1, F*hop], mel_loss, name."""
    return {
        "mel": torch.stack([item["mel"] for item in items]),
        "audio": torch.stack([item["audio"] for item in items]).unsqueeze(1),
        "mel_loss": torch.stack([item["mel_loss"] for item in items]),
        "name": [item["name"] for item in items],
        "skipped": [entry for item in items for entry in item.get("skipped", [])],
    }


class EpochKeyedSampler(DistributedSampler):
    """A DistributedSampler whose keys are (epoch, index).

    The dataset seeds each item's random crop from (seed, epoch, index), so
    crops differ between devices and epochs, do not depend on worker count or
    worker seeding, and are drawn again identically when a run resumes.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        for index in super().__iter__():
            yield epoch, index
