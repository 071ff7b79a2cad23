import pytest
import torch

from hifigan import AudioConfig, MelSpectrogram


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    return torch.load(fixtures_dir / "mel_reference.pt")


@pytest.mark.parametrize("fmax, key", [(8000, "mel_fmax_8000"), (None, "mel_fmax_none")])
def test_mel_matches_original(reference, fmax, key):
    params = reference["params"]
    mel = MelSpectrogram(
        sampling_rate=params["sampling_rate"],
        n_fft=params["n_fft"],
        hop_length=params["hop_size"],
        win_length=params["win_size"],
        n_mels=params["num_mels"],
        fmin=params["fmin"],
        fmax=fmax,
    )(reference["audio"])
    assert mel.shape == reference[key].shape
    # FFT rounding in the quietest bins differs between CPUs (fixtures README): compare linear
    # magnitudes relative to the loudest bin, which holds on every CPU (about 2e-7 here)
    assert relative_linear_error(mel, reference[key]) < 1e-5


def relative_linear_error(log_mel: torch.Tensor, reference: torch.Tensor) -> float:
    return float((log_mel.exp() - reference.exp()).abs().max() / reference.exp().max())


def test_frames_are_length_over_hop():
    mel = MelSpectrogram()
    for length in (1000, 8192, 31631):
        assert mel(torch.randn(2, length) * 0.1).shape == (2, 80, length // 256)
    assert mel(torch.randn(4096) * 0.1).shape == (1, 80, 16)


def test_from_config_uses_loss_fmax():
    audio = AudioConfig(fmax=8000, fmax_for_loss=None)
    assert MelSpectrogram.from_config(audio).fmax == 8000
    assert MelSpectrogram.from_config(audio, for_loss=True).fmax is None


def test_float32_under_autocast_and_half_input(reference):
    mel = MelSpectrogram()
    expected = mel(reference["audio"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mel(reference["audio"].bfloat16())
    assert out.dtype == torch.float32
    # bf16 input carries only 8 bits of mantissa; the mel must still be close in float32
    assert (out - expected).abs().mean() < 0.05


def test_filterbank_and_window_are_buffers_built_once():
    mel = MelSpectrogram()
    basis = mel.mel_basis
    mel(torch.randn(1, 4096))
    assert mel.mel_basis is basis
    assert "mel_basis" not in mel.state_dict()  # not persisted: rebuilt from the settings


def test_too_short_audio_is_a_clear_error():
    with pytest.raises(ValueError, match="too short"):
        MelSpectrogram()(torch.zeros(100))
