"""Bias denoiser: off by default, removes the generator's bias, exact in batches and streams."""
import math

import pytest
import torch

from hifigan import Generator, preset
from hifigan.config import with_generator_channels
from hifigan.inference import Vocoder
from hifigan.inference.denoiser import BIAS_FRAMES



@pytest.fixture(scope="module")
def vocoder():
    config = with_generator_channels(preset("v1"), 16)
    torch.manual_seed(0)
    return Vocoder(Generator(config.generator), config, device="cpu")


def speechlike_mel(frames=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(80, frames, generator=g).cumsum(-1) * 0.1 - 5.0


def test_off_by_default_and_zero_strength_is_identity(vocoder):
    mel = speechlike_mel()
    assert vocoder.denoise == 0.0
    assert torch.equal(vocoder(mel), vocoder(mel, denoise=0.0))


def test_removes_the_bias_of_a_silent_input(vocoder):
    """The generator's output for the bias mel is (mostly) its bias: denoising takes most of it away."""
    bias_mel = torch.zeros(80, BIAS_FRAMES)  # NVIDIA's mode: a mel of zeros
    raw = vocoder(bias_mel)
    cleaned = vocoder(bias_mel, denoise=1.0)
    assert cleaned.shape == raw.shape
    assert cleaned.square().sum() < 0.2 * raw.square().sum()
    # a small strength changes a different input only a little
    mel = speechlike_mel()
    audio, light = vocoder(mel), vocoder(mel, denoise=0.01)
    change = (light - audio).square().sum() / audio.square().sum()
    assert 0 < change < 0.05


def test_bias_spectrum_depends_on_mode(vocoder):
    zeros = vocoder.denoiser().bias_spectrum
    other = Vocoder(vocoder.generator, vocoder.config, device="cpu", denoise_mode="silence").denoiser()
    assert zeros.shape == (vocoder.config.audio.n_fft // 2 + 1,)
    assert not torch.allclose(zeros, other.bias_spectrum)
    assert math.isclose(other.hop_length, 256)


def test_denoised_batches_and_streams_equal_the_full_denoised_utterance(vocoder):
    strength = 0.5
    mels = [speechlike_mel(40, 1), speechlike_mel(13, 2), speechlike_mel(1, 3)]
    singles = [vocoder(m, denoise=strength) for m in mels]
    for single, batched in zip(singles, vocoder(mels, denoise=strength)):
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    for chunk in (1, 6):
        streamed = torch.cat(list(vocoder.stream(mels[0].split(chunk, dim=-1), denoise=strength)))
        torch.testing.assert_close(streamed, singles[0], atol=1e-5, rtol=0)
    # the vocoder-wide setting applies to streams too
    noisy = Vocoder(vocoder.generator, vocoder.config, device="cpu", denoise=strength)
    assert noisy.streamer().latency_frames > vocoder.streamer().latency_frames
    torch.testing.assert_close(torch.cat(list(noisy.stream([mels[1]]))), singles[1], atol=1e-5, rtol=0)
