"""The dataset: formats, resampling, crops and their mels, validation items, bad files."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from hifigan.audio import MelSpectrogram, load_audio
from hifigan.data import VocoderDataset, crop_or_pad, peak_normalise
from hifigan.data.dataset import collate
from hifigan.errors import DataError
from test_data_helpers import make_bad_files, tone, write

RATE = 22050



@pytest.mark.parametrize(
    "suffix, format, subtype",
    [
        (".wav", "WAV", "PCM_16"),
        (".wav", "WAV", "PCM_24"),
        (".wav", "WAV", "PCM_32"),
        (".wav", "WAV", "FLOAT"),
        (".flac", "FLAC", "PCM_16"),
        (".flac", "FLAC", "PCM_24"),
        (".ogg", "OGG", "VORBIS"),
    ],
)
def test_every_format_gives_a_normalised_training_item(tmp_path, tiny_config, suffix, format, subtype):
    data = tone(1.0, RATE, channels=2)
    path = write(tmp_path / f"clip{suffix}", data, RATE, subtype=subtype, format=format)
    item = VocoderDataset([path], tiny_config, train=True)[0]
    segment = tiny_config.training.segment_size
    frames = segment // tiny_config.audio.hop_length
    assert item["audio"].shape == (segment,) and item["mel"].shape == (80, frames)
    assert item["mel_loss"].shape == (80, frames) and item["skipped"] == []
    # downmixed (the mean of the channels) and peak-normalised to 0.95 as the authors
    mono = data.mean(axis=1)
    expected = torch.from_numpy(mono * 0.95 / np.abs(mono).max())
    if subtype != "VORBIS":  # lossless: the crop is exactly a piece of the expected audio
        start = _find_start(expected, item["audio"])
        torch.testing.assert_close(item["audio"], expected[start : start + segment], atol=2e-4, rtol=0)
    whole = VocoderDataset([path], tiny_config, train=False)[0]
    assert abs(float(whole["audio"].abs().max()) - 0.95) < 1e-6
    hop = tiny_config.audio.hop_length
    assert whole["audio"].shape == (RATE // hop * hop,)


def _find_start(full: torch.Tensor, crop: torch.Tensor) -> int:
    """Where a crop came from (the smallest squared error over all starts)."""
    probe = crop[:64]
    windows = full[: full.numel() - crop.numel() + 1 + 63].unfold(0, 64, 1)
    return int(((windows - probe) ** 2).sum(dim=1).argmin())


def test_crop_mel_is_the_mel_of_the_cropped_audio(tmp_path, tiny_config):
    tiny_config.audio.fmax_for_loss = None
    path = write(tmp_path / "speech.wav", tone(2.0, RATE, seed=3), RATE)
    dataset = VocoderDataset([path], tiny_config, train=True, seed=5)
    full = peak_normalise(torch.from_numpy(load_audio(path, RATE).samples))
    mel_fn = MelSpectrogram.from_config(tiny_config.audio)
    loss_fn = MelSpectrogram.from_config(tiny_config.audio, for_loss=True)
    starts = set()
    for epoch in range(4):
        item = dataset[(epoch, 0)]  # (epoch, index) keys, as the training sampler gives
        start = _find_start(full, item["audio"])
        starts.add(start)
        segment = full[start : start + tiny_config.training.segment_size]
        torch.testing.assert_close(item["audio"], segment, atol=0, rtol=0)
        torch.testing.assert_close(item["mel"], mel_fn(segment)[0])  # generator input: fmax 8000
        torch.testing.assert_close(item["mel_loss"], loss_fn(segment)[0])  # loss: full band
    assert len(starts) > 1  # random crops
    assert not torch.allclose(item["mel"], item["mel_loss"])  # fmax differs from the full band


def test_short_clip_is_zero_padded(tmp_path, tiny_config):
    path = write(tmp_path / "short.wav", tone(0.05, RATE), RATE)  # 1102 samples < 4096
    item = VocoderDataset([path], tiny_config, train=True)[0]
    n = len(load_audio(path).samples)
    assert item["audio"].shape == (tiny_config.training.segment_size,)
    assert item["audio"][:n].abs().max() > 0.9 and item["audio"][n:].abs().max() == 0
    mel_fn = MelSpectrogram.from_config(tiny_config.audio)
    torch.testing.assert_close(item["mel"], mel_fn(item["audio"])[0])


def test_crop_helpers():
    g = torch.Generator().manual_seed(0)
    audio = torch.arange(10.0)
    assert crop_or_pad(audio, 10, g).tolist() == audio.tolist()
    assert crop_or_pad(audio, 12, g).tolist() == audio.tolist() + [0.0, 0.0]
    crops = {tuple(crop_or_pad(audio, 4, g).tolist()) for _ in range(50)}
    assert len(crops) == 7  # every start 0..6 occurs, the last included
    assert peak_normalise(torch.zeros(5)).tolist() == [0.0] * 5  # silence is left alone


def test_validation_item_is_the_whole_utterance(tmp_path, tiny_config):
    path = write(tmp_path / "utt.flac", tone(1.3, 16000, seed=2), 16000, format="FLAC")
    item = VocoderDataset([path], tiny_config, train=False)[0]
    full = peak_normalise(torch.from_numpy(load_audio(path, RATE).samples))
    hop = tiny_config.audio.hop_length
    frames = full.numel() // hop
    assert item["mel"].shape == (80, frames) and item["mel_loss"].shape == (80, frames)
    torch.testing.assert_close(item["audio"], full[: frames * hop])
    torch.testing.assert_close(item["mel"], MelSpectrogram.from_config(tiny_config.audio)(full)[0])
    batch = collate([item])
    assert batch["audio"].shape == (1, 1, frames * hop) and batch["name"] == ["utt"]


def test_resampled_on_load_to_the_config_rate(tmp_path, tiny_config):
    path = write(tmp_path / "a16k.wav", tone(1.0, 16000), 16000)
    item = VocoderDataset([path], tiny_config, train=False)[0]
    frames = round(16000 * RATE / 16000 * 1.0) // 256  # 1 s at 22.05 kHz
    assert item["mel"].shape[-1] == frames


def test_bad_files_are_skipped_and_reported(tmp_path, tiny_config):
    bad = make_bad_files(tmp_path)
    good = write(tmp_path / "good.wav", tone(1.0, RATE), RATE)
    files = [bad["empty"], bad["truncated"], bad["text"], bad["nan"], bad["one_sample"], good]
    dataset = VocoderDataset(files, tiny_config, train=True)
    reasons = {}
    for index in range(len(files) - 1):
        item = dataset[index]
        assert item["name"] == "good"  # replaced by a file that loads
        reasons.update(dict(item["skipped"]))
    assert set(reasons) == {str(p) for p in files[:-1]}
    assert reasons[str(bad["empty"])] == "empty file (0 bytes)"
    assert reasons[str(bad["truncated"])].startswith("unreadable (")
    assert reasons[str(bad["text"])] == "not audio (format not recognised)"
    assert "NaN" in reasons[str(bad["nan"])]
    assert reasons[str(bad["one_sample"])].startswith("too short: 1 sample at 22050 Hz")
    # a file known to be bad is not tried (or reported) again
    assert dataset[3]["skipped"] == []
    # a silent file is usable: zeros stay zeros, no NaN from the normalisation
    silent = VocoderDataset([bad["silent"]], tiny_config, train=True)[0]
    assert silent["skipped"] == [] and silent["audio"].abs().max() == 0
    assert torch.isfinite(silent["mel"]).all()


def test_all_files_bad_is_a_clear_error(tmp_path, tiny_config):
    bad = make_bad_files(tmp_path)
    dataset = VocoderDataset([bad["text"], bad["nan"]], tiny_config, train=True, max_tries=5)
    with pytest.raises(DataError, match="2 files in a row failed to load.*2 of 2 files are bad"):
        dataset[0]


def test_segment_must_be_a_multiple_of_the_hop(tmp_path, tiny_config):
    path = write(tmp_path / "a.wav", tone(0.3, RATE), RATE)
    tiny_config.training.segment_size = 4000
    with pytest.raises(DataError, match="multiple of the hop"):
        VocoderDataset([path], tiny_config, train=True)


def test_allison_clip_resampled_from_16k(allison_dir, tiny_config):
    path = allison_dir / "wavs" / "conf-getconfno.flac"
    info = sf.info(str(path))
    item = VocoderDataset([path], tiny_config, train=False)[0]
    expected_samples = round(info.frames * RATE / info.samplerate)
    assert item["mel"].shape == (80, expected_samples // 256)
    assert item["audio"].shape == (expected_samples // 256 * 256,)
    assert abs(float(item["audio"].abs().max()) - 0.95) < 0.05
