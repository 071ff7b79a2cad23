"""Mel value checks that know the front-end dialects (inference/inputs.py `check_mel_values`).

Each dialect's own mel passes its own model silently; another toolkit's mel is
named (MelRangeWarning, or a DataError when the values are impossible for the
model), with what the model expects instead.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch

from hifigan.audio import MelSpectrogram, load_audio
from hifigan.config import AudioConfig
from hifigan.errors import DataError
from hifigan.inference import inputs
from hifigan.inference.inputs import MelRangeWarning, check_mel_values, load_mel_file, mel_value_range

HIFIGAN = AudioConfig()
FASTPITCH = AudioConfig(frontend="fastpitch")
COQUI = AudioConfig(frontend="coqui", center=True, magnitude_eps=0.0, log="log10", log_gain=20.0,
                    normalize="db-range")
PWG_RAW = AudioConfig(frontend="parallel-wavegan", center=True, magnitude_eps=0.0, log="log10",
                      log_floor=1e-10, fmin=80.0, fmax=7600.0)


@pytest.fixture(scope="module")
def clips(allison_dir):
    """Two speech clips at 22.05 kHz, each with 0.2 s of digital silence after it (as TTS corpora have)."""
    names = (allison_dir / "val.txt").read_text().split()[:2]
    silence = np.zeros(4410, np.float32)
    return [torch.from_numpy(np.concatenate([load_audio(allison_dir / n, 22050).samples, silence]))
            for n in names]


@pytest.fixture(scope="module")
def pwg(clips) -> AudioConfig:
    """ParallelWaveGAN's front end with stats.h5-style statistics of another clip."""
    raw = MelSpectrogram.from_config(PWG_RAW)(clips[1])[0]
    return dataclasses.replace(PWG_RAW, normalize="per-band", norm_mean=raw.mean(1).tolist(),
                               norm_scale=raw.std(1).tolist())


def mel_of(audio: AudioConfig, clip: torch.Tensor) -> torch.Tensor:
    return MelSpectrogram.from_config(audio)(clip)[0]


def outcome(mel: torch.Tensor, audio: AudioConfig) -> tuple[str, str]:
    """("ok" | "warning" | "error", the message) of checking `mel` against a model of `audio`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check_mel_values(mel, audio, "utt.npy")
        except DataError as exc:
            return "error", str(exc)
    ranges = [w for w in caught if issubclass(w.category, MelRangeWarning)]
    assert len(ranges) <= 1, [str(w.message) for w in ranges]
    return ("warning", str(ranges[0].message)) if ranges else ("ok", "")


def test_each_front_end_s_own_mel_passes_its_own_model(clips, pwg):
    for audio in (HIFIGAN, FASTPITCH, COQUI, pwg, PWG_RAW):
        for clip in clips:
            assert outcome(mel_of(audio, clip), audio) == ("ok", ""), audio.frontend


def test_the_model_range_is_its_floor_and_a_full_scale_sine(pwg):
    low, high = mel_value_range(HIFIGAN)
    assert low == pytest.approx(math.log(1e-5)) and 1.5 < high < 3.5
    low, high = mel_value_range(COQUI)
    assert low == -4.0 and 3.5 < high <= 4.0
    low, high = mel_value_range(PWG_RAW)
    assert low == pytest.approx(-10.0) and 0.5 < high < 1.5
    low, high = mel_value_range(pwg)
    assert low < -3 and high > 1  # (silence - mean) / scale, (full scale - mean) / scale
    before = inputs._front_end_range.cache_info().hits
    mel_value_range(dataclasses.replace(HIFIGAN))  # an equal config: computed once
    assert inputs._front_end_range.cache_info().hits == before + 1


def test_a_coqui_mel_for_a_hifigan_model_is_named(clips):
    kind, message = outcome(mel_of(COQUI, clips[0]), HIFIGAN)
    assert kind == "warning"
    assert message.startswith("utt.npy: values run from -4 to ")
    assert ("looks like a Coqui-normalised mel (values clipped to [-4, 4]), but this model expects the hifigan "
            "front end: natural-log magnitudes, floor log(1e-5) = -11.5") in message


def test_a_parallel_wavegan_mel_for_a_hifigan_model_is_named(clips, pwg):
    kind, message = outcome(mel_of(pwg, clips[0]), FASTPITCH)
    assert kind == "warning" and "per-band-normalised" in message and "ParallelWaveGAN" in message
    assert "the fastpitch front end: natural-log magnitudes" in message


@pytest.mark.parametrize("model", ["coqui", "parallel-wavegan"])
def test_a_natural_log_mel_for_a_normalised_model_is_named(clips, pwg, model):
    audio = COQUI if model == "coqui" else pwg
    kind, message = outcome(mel_of(HIFIGAN, clips[0]), audio)
    assert kind == "error", message  # far below either normalised range
    assert "looks like a natural-log mel (floor near log(1e-5) = -11.5)" in message
    assert f"this model expects the {model} front end" in message
    assert ("normalised to [-4, 4]" if model == "coqui" else "normalised per band") in message


@pytest.mark.parametrize("kind, convert, expected, words", [
    ("linear", torch.exp, "warning", ["linear-magnitude", "apply log(clamp(mel, 1e-5))"]),
    ("log10", lambda m: m / math.log(10), "warning", ["log10 mel (floor near log10(1e-5) = -5)", "ln(10)"]),
    ("decibels", lambda m: 20 * m / math.log(10), "error", ["far outside a natural-log mel", "decibel"]),
])
def test_other_scales_of_a_natural_log_mel(clips, kind, convert, expected, words):
    got, message = outcome(convert(mel_of(HIFIGAN, clips[0])), HIFIGAN)
    assert got == expected, message
    for word in words:
        assert word in message, message
    assert "but this model expects the hifigan front end" in message


def test_an_unnormalised_parallel_wavegan_mel_is_a_log10_mel(clips):
    kind, message = outcome(mel_of(PWG_RAW, clips[0]), HIFIGAN)
    assert kind == "warning" and "log10 mel (floor near log10(1e-10) = -10" in message


def test_impossible_values_are_errors_and_near_misses_warnings(clips):
    mel = mel_of(HIFIGAN, clips[0])
    kind, message = outcome(torch.linspace(-11, 12, 800).reshape(80, 10), HIFIGAN)
    assert kind == "error" and "far outside a natural-log mel of audio in [-1, 1] (about -11.5 to 2.3)" in message
    # NeMo's floor log(2^-24) = -16.6 is below what this model's front end makes, but not impossible
    kind, message = outcome(mel.clamp(min=math.log(2 ** -24)) + torch.where(mel <= -11.5, -5.1, 0.0), HIFIGAN)
    assert kind == "warning" and "outside what this model's front end makes (about -11.5 to 2.3)" in message
    # a TTS prediction a little under the floor is fine
    assert outcome(mel - 0.5, HIFIGAN) == ("ok", "")


def test_non_finite_values_are_counted(clips):
    mel = mel_of(HIFIGAN, clips[0])
    mel[3, :4] = float("nan")
    kind, message = outcome(mel, HIFIGAN)
    assert kind == "error" and "4 NaN or infinite values" in message


def test_messages_are_single_lines(clips, pwg):
    for mel, audio in [(mel_of(COQUI, clips[0]), HIFIGAN), (mel_of(HIFIGAN, clips[0]), COQUI),
                       (mel_of(pwg, clips[0]), HIFIGAN), (mel_of(HIFIGAN, clips[0]).exp(), HIFIGAN)]:
        kind, message = outcome(mel, audio)
        assert kind != "ok" and "\n" not in message and "\x1b" not in message


def test_load_mel_file_checks_against_the_model_s_front_end(clips, tmp_path):
    path = tmp_path / "coqui.npy"
    np.save(path, mel_of(COQUI, clips[0]).numpy())
    assert load_mel_file(path, COQUI).shape[0] == 80  # silent for a Coqui model
    with pytest.warns(MelRangeWarning, match="Coqui-normalised"):
        load_mel_file(path, HIFIGAN)
    with pytest.warns(MelRangeWarning, match="Coqui-normalised"):
        load_mel_file(path, 80)  # a band count alone: the authors' front end
