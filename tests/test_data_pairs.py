"""Fine-tuning pairs: mel files matched to audio, cropped in step, off-by-one frames trimmed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hifigan.audio import MelSpectrogram, load_audio
from hifigan.data import VocoderDataset, load_mel
from hifigan.data.dataset import SILENT_MEL
from hifigan.data.lists import DataSplits
from hifigan.errors import DataError
from test_data_helpers import tone, write

RATE = 22050
HOP = 256



def counting_mel(frames: int, n_mels: int = 80) -> np.ndarray:
    """A stand-in TTS mel whose every value is its frame index: crops show where they came from."""
    return np.tile(np.arange(frames, dtype=np.float32), (n_mels, 1))


def make_pair(tmp_path, name: str, frames: int, mel_frames: int, layout: str = "npy2d"):
    audio = tone(frames * HOP / RATE + 100 / RATE, RATE, seed=len(name)) * 0.3  # F*hop + 100 samples
    wav = write(tmp_path / "wavs" / f"{name}.wav", audio, RATE, subtype="FLOAT")
    mel = counting_mel(mel_frames)
    mel_dir = tmp_path / "mels"
    mel_dir.mkdir(exist_ok=True)
    if layout == "npy2d":
        np.save(mel_dir / f"{name}.npy", mel)
    elif layout == "npy3d":
        np.save(mel_dir / f"{name}.npy", mel[None])
    elif layout == "pt":
        torch.save(torch.from_numpy(mel)[None], mel_dir / f"{name}.pt")
    return wav, mel_dir


@pytest.mark.parametrize("layout", ["npy2d", "npy3d", "pt"])
def test_training_pair_is_cropped_in_step(tmp_path, tiny_config, layout):
    wav, mel_dir = make_pair(tmp_path, "utt", frames=60, mel_frames=60, layout=layout)
    dataset = VocoderDataset([wav], tiny_config, train=True, mel_dir=mel_dir, seed=3)
    raw = torch.from_numpy(load_audio(wav, RATE).samples)  # fine-tuning keeps the level
    seg_frames = tiny_config.training.segment_size // HOP
    starts = set()
    for epoch in range(6):
        item = dataset[(epoch, 0)]  # (epoch, index) keys, as the training sampler gives
        assert item["mel"].shape == (80, seg_frames) and item["audio"].shape == (seg_frames * HOP,)
        start = int(item["mel"][0, 0])
        starts.add(start)
        assert item["mel"][0].tolist() == list(range(start, start + seg_frames))
        torch.testing.assert_close(item["audio"], raw[start * HOP : (start + seg_frames) * HOP], atol=0, rtol=0)
        loss_fn = MelSpectrogram.from_config(tiny_config.audio, for_loss=True)
        torch.testing.assert_close(item["mel_loss"], loss_fn(item["audio"])[0])
    assert len(starts) > 1 and max(starts) <= 60 - seg_frames


@pytest.mark.parametrize("mel_frames", [58, 59, 61, 62])
def test_one_or_two_frames_off_are_trimmed(tmp_path, tiny_config, mel_frames):
    wav, mel_dir = make_pair(tmp_path, "utt", frames=60, mel_frames=mel_frames)
    item = VocoderDataset([wav], tiny_config, train=False, mel_dir=mel_dir)[0]
    frames = min(60, mel_frames)
    assert item["mel"].shape == (80, frames) and item["audio"].shape == (frames * HOP,)
    assert item["mel_loss"].shape == (80, frames)
    assert item["mel"][0].tolist() == list(range(frames))  # trimmed at the end, aligned at the start


def test_larger_mismatch_names_the_file_and_both_lengths(tmp_path, tiny_config):
    wav, mel_dir = make_pair(tmp_path, "utt", frames=60, mel_frames=63)
    good, _ = make_pair(tmp_path, "good", frames=40, mel_frames=40)
    item = VocoderDataset([wav, good], tiny_config, train=False, mel_dir=mel_dir)[0]
    assert item["name"] == "good"
    (path, reason), = item["skipped"]
    assert path.endswith("utt.wav")
    assert "utt.npy has 63 frames but the audio has 60" in reason


def test_short_pair_is_padded_with_silence(tmp_path, tiny_config):
    wav, mel_dir = make_pair(tmp_path, "short", frames=5, mel_frames=5)
    item = VocoderDataset([wav], tiny_config, train=True, mel_dir=mel_dir)[0]
    seg_frames = tiny_config.training.segment_size // HOP
    assert item["mel"].shape == (80, seg_frames)
    assert item["mel"][0, :5].tolist() == [0, 1, 2, 3, 4]
    assert torch.all(item["mel"][:, 5:] == SILENT_MEL)
    assert item["audio"][5 * HOP :].abs().max() == 0 and item["audio"][: 5 * HOP].abs().max() > 0


def test_mel_file_errors(tmp_path):
    # [frames, n_mels] (NVIDIA's layout) is read, as synthesis reads it (the one mel reader)
    np.save(tmp_path / "t.npy", counting_mel(30).T.copy())
    assert load_mel(tmp_path / "t.npy", 80)[0].tolist() == list(range(30))
    np.save(tmp_path / "w.npy", np.zeros((30, 60), np.float32))
    with pytest.raises(DataError, match="no axis of 80 bands"):
        load_mel(tmp_path / "w.npy", 80)
    np.save(tmp_path / "n.npy", np.full((80, 4), np.nan, np.float32))
    with pytest.raises(DataError, match="NaN"):
        load_mel(tmp_path / "n.npy", 80)
    (tmp_path / "bad.pt").write_text("not a tensor")
    with pytest.raises(DataError, match="bad.pt: not a .npy/.pt file"):
        load_mel(tmp_path / "bad.pt", 80)


def test_transposed_mels_pair_with_their_audio(tmp_path, tiny_config):
    wav, mel_dir = make_pair(tmp_path, "utt", frames=40, mel_frames=40)
    np.save(mel_dir / "utt.npy", counting_mel(40).T.copy())  # NVIDIA's [frames, n_mels]
    item = VocoderDataset([wav], tiny_config, train=False, mel_dir=mel_dir)[0]
    assert item["mel"].shape == (80, 40) and item["mel"][0].tolist() == list(range(40))


def test_datamodule_checks_pairs_before_training(tmp_path, tiny_config):
    from hifigan.data import HiFiGANDataModule

    files = []
    for i, mel_frames in enumerate([40, 41, 38, 40, 40]):
        wav, mel_dir = make_pair(tmp_path, f"u{i}", frames=40, mel_frames=mel_frames)
        files.append(wav)
    splits = DataSplits(train=files[:4], val=files[4:])
    dm = HiFiGANDataModule(tiny_config, splits, mel_dir=mel_dir, batch_size=2, num_workers=0)
    dm.setup()
    assert dm.report.trimmed_pairs == 2
    assert any("2 mel files are 1-2 frames longer or shorter" in m for m in dm.report.messages())
    batch = next(iter(dm.train_dataloader()))
    assert batch["mel"].shape == (2, 80, 16) and batch["audio"].shape == (2, 1, 4096)
    val = next(iter(dm.val_dataloader()))
    assert val["mel"].shape == (1, 80, 40) and val["audio"].shape == (1, 1, 40 * HOP)
    # a pair 5 frames apart, and an audio file without a mel, stop the run before it starts
    bad, _ = make_pair(tmp_path, "far", frames=40, mel_frames=45)
    orphan = write(tmp_path / "wavs" / "orphan.wav", tone(0.5, RATE), RATE)
    dm = HiFiGANDataModule(tiny_config, DataSplits(train=files + [bad, orphan], val=[]), mel_dir=mel_dir,
                           batch_size=2, num_workers=0)
    with pytest.raises(DataError, match=r"far.wav: its mel file .*far.npy has 45 frames but the audio has 40.*orphan"):
        dm.setup()
