"""Sanity properties of each objective metric on real speech (allison-en-16k)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hifigan
from hifigan.audio import load_audio
from hifigan.config import AudioConfig, preset
from hifigan.errors import DataError
from hifigan.evaluation import metrics as M

RATE = 16000
NOISE_SNR_DB = (30.0, 20.0, 10.0)  # increasing noise


@pytest.fixture(scope="module")
def speech(allison_dir) -> np.ndarray:
    samples = load_audio(allison_dir / "wavs" / "conf-lockednow.flac").samples  # 1.8 s, 16 kHz
    return samples * np.float32(0.95 / np.abs(samples).max())


def _noisy(clean: np.ndarray, snr_db: float) -> np.ndarray:
    noise = np.random.default_rng(1234).standard_normal(len(clean)).astype(np.float32)
    scale = math.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return clean + np.float32(scale) * noise


@pytest.fixture(scope="module")
def noisy(speech):
    return [_noisy(speech, snr) for snr in NOISE_SNR_DB]


@pytest.fixture(scope="module")
def audio_config():
    return preset("v1").audio


def test_metrics_is_the_public_alias():
    assert hifigan.metrics is M
    assert hifigan.metrics.pesq_wb is M.pesq_wb


def test_a_clip_against_itself_scores_perfectly(speech, audio_config):
    assert M.mel_l1(speech, speech, audio_config, RATE) == 0.0
    assert M.multi_resolution_stft(speech, speech, RATE).total == pytest.approx(0.0, abs=1e-6)
    assert M.mcd(speech, speech, RATE) == 0.0
    assert M.pesq_wb(speech, speech, RATE) > 4.5  # the wide-band maximum is 4.64
    assert M.stoi(speech, speech, RATE) > 0.999
    pitch = M.pitch_metrics(speech, speech, RATE)
    assert pitch.rmse_cents == 0.0 and pitch.vuv_f1 == 1.0 and pitch.voiced_in_both > 50


def test_every_metric_worsens_monotonically_with_noise(speech, noisy, audio_config):
    ref_pitch = M.pitch_track(speech, RATE)
    rows = []
    for degraded in [speech] + noisy:
        pitch = M.compare_pitch(ref_pitch, M.pitch_track(degraded, RATE))
        rows.append({
            "mel_l1": M.mel_l1(speech, degraded, audio_config, RATE),
            "mr_stft": M.multi_resolution_stft(speech, degraded, RATE).total,
            "mcd": M.mcd(speech, degraded, RATE),
            "pesq": -M.pesq_wb(speech, degraded, RATE),  # negated: higher is better
            "stoi": -M.stoi(speech, degraded, RATE),
            "f0_rmse": pitch.rmse_cents,
        })
    for key in rows[0]:
        values = [row[key] for row in rows]
        assert all(a < b for a, b in zip(values, values[1:])), (key, values)


def test_mel_l1_and_mcd_definitions_on_a_gain_change(speech, audio_config):
    # halving the level shifts every unclamped log-mel bin by ln 2 and only moves c0; at 16 kHz
    # the full band has content (at 22.05 kHz the empty bins above 8 kHz stay clamped)
    half = speech * np.float32(0.5)
    config_16k = AudioConfig(sampling_rate=RATE, fmax=8000.0, fmax_for_loss=None)
    assert M.mel_l1(speech, half, config_16k) == pytest.approx(math.log(2.0), rel=0.02)
    assert M.mcd(speech, half, RATE) < 0.05
    assert M.mcd(speech, _noisy(speech, 20.0), RATE) > 1.0


def test_pitch_rmse_is_in_cents():
    t = np.arange(RATE) / RATE

    def tone(f0):
        return sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)).astype(np.float32)

    result = M.pitch_metrics(tone(200.0), tone(200.0 * 2 ** (50 / 1200)), RATE)
    assert result.rmse_cents == pytest.approx(50.0, abs=6.0)
    assert result.vuv_f1 > 0.95


def test_inputs_are_resampled_per_metric(speech, audio_config):
    # the same pair at 22.05 kHz scores like at 16 kHz for the metrics defined at a fixed rate
    from hifigan.audio import resample

    degraded = _noisy(speech, 20.0)
    ref22, deg22 = resample(speech, RATE, 22050), resample(degraded, RATE, 22050)
    assert M.pesq_wb(ref22, deg22, 22050) == pytest.approx(M.pesq_wb(speech, degraded, RATE), abs=0.1)
    assert M.stoi(ref22, deg22, 22050) == pytest.approx(M.stoi(speech, degraded, RATE), abs=0.01)
    assert M.mel_l1(ref22, deg22, audio_config) == pytest.approx(
        M.mel_l1(speech, degraded, audio_config, RATE), rel=0.05)


@pytest.mark.parametrize("metric, seconds", [
    ("mel_l1", 0.01), ("mr_stft", 0.1), ("pesq", 0.2), ("stoi", 0.3), ("mcd", 0.02), ("pitch", 0.05),
])
def test_too_short_clips_are_skipped_with_a_reason(speech, audio_config, metric, seconds):
    clip = speech[: int(seconds * RATE)]
    call = {
        "mel_l1": lambda: M.mel_l1(clip, clip, audio_config, RATE),
        "mr_stft": lambda: M.multi_resolution_stft(clip, clip, RATE),
        "pesq": lambda: M.pesq_wb(clip, clip, RATE),
        "stoi": lambda: M.stoi(clip, clip, RATE),
        "mcd": lambda: M.mcd(clip, clip, RATE),
        "pitch": lambda: M.pitch_metrics(clip, clip, RATE),
    }[metric]
    with pytest.raises(M.MetricSkipped) as caught:
        call()
    assert caught.value.metric == metric
    assert "short" in caught.value.reason or "frames" in caught.value.reason


def test_silence_and_unusable_pairs(allison_dir, speech):
    silence = load_audio(allison_dir / "wavs" / "silence_1.flac").samples
    with pytest.raises(M.MetricSkipped, match="no voiced frames"):
        M.pitch_metrics(silence, silence, RATE)
    with pytest.raises(M.MetricSkipped, match="digital silence"):
        M.pesq_wb(speech, np.zeros_like(speech), RATE)
    with pytest.raises(DataError, match="differ in length"):
        M.stoi(speech, speech[: len(speech) // 2], RATE)
    with pytest.raises(DataError, match="mono"):
        M.mcd(np.stack([speech, speech]), np.stack([speech, speech]), RATE)
    broken = speech.copy()
    broken[10] = np.nan
    with pytest.raises(DataError, match="NaN"):
        M.mcd(speech, broken, RATE)
    # torch tensors shaped [1, T] are accepted like arrays
    assert M.mcd(torch.from_numpy(speech)[None], torch.from_numpy(speech)[None], RATE) == 0.0


def test_input_band_mel_l1_ignores_what_lies_above_fmax(speech, audio_config):
    """Noise above 8 kHz moves the full-band mel L1, not the generator-input-band one."""
    import scipy.signal

    from hifigan.audio import resample

    rate = audio_config.sampling_rate
    clean = resample(speech, RATE, rate)
    rng = np.random.default_rng(0)
    highpass = scipy.signal.butter(8, 9000, "highpass", fs=rate, output="sos")
    noisy = clean + scipy.signal.sosfilt(highpass, rng.standard_normal(len(clean)) * 0.01).astype(np.float32)
    full = M.mel_l1(clean, noisy, audio_config, rate)
    band = M.mel_l1(clean, noisy, audio_config, rate, input_band=True)
    assert full > 0.3 and band < full / 5, (full, band)
