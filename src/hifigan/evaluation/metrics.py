"""Objective vocoder metrics: a reference clip against a time-aligned generated one.

Every function takes mono float audio (numpy or torch) at `sampling_rate` and
resamples internally to the rate its metric is defined at (PESQ-WB, MCD and
pitch: 16 kHz; STOI: 10 kHz; mel L1: the model's rate; multi-resolution STFT:
the given rate). Copy synthesis keeps time alignment, so frames are compared
1:1 after cropping both signals to the shorter one (no DTW). A clip a metric
cannot score raises `MetricSkipped` with the reason, so callers can report it.

Defined as implemented (docs/readme/evaluation.md repeats this):
- mel L1: mean |loss-mel(reference) - loss-mel(generated)|, the full-band
  natural-log mel of the model's `AudioConfig` (`fmax_for_loss`), both cropped
  to whole hops: the authors' validation error.
- multi-resolution STFT: spectral convergence ||S|-|Ŝ||_F / ||S||_F plus
  mean |ln|S| - ln|Ŝ||, each averaged over (n_fft, hop, win) = (1024, 120, 600),
  (2048, 240, 1200), (512, 50, 240), Hann, centred frames.
- PESQ: ITU-T P.862.2 wide-band MOS-LQO (the `pesq` package) at 16 kHz.
- STOI: classic STOI (`pystoi`, not extended) at its native 10 kHz.
- MCD: MFCC-style mel cepstra, see `MCD_DEFINITION`.
- pitch: librosa pYIN at 16 kHz; RMSE in cents over frames voiced in both,
  voiced/unvoiced F1 with the reference's decisions as the truth.
"""
from __future__ import annotations

import dataclasses
import json

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

import numpy as np
import torch

from ..audio import MelSpectrogram, resample
from ..config import AudioConfig
from ..errors import DataError

AudioLike = Union[np.ndarray, torch.Tensor]

PESQ_RATE = 16000
STOI_RATE = 10000  # pystoi's internal rate; we resample with soxr, not pystoi's resampler
MCD_RATE = 16000
PITCH_RATE = 16000
# time-aligned inputs may differ by up to this much (copy synthesis yields whole hops)
ALIGNMENT_TOLERANCE_SECONDS = 0.05

STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))  # (n_fft, hop, win)

MCD_ORDER = 24  # c1..c24; c0 (frame energy) excluded
MCD_N_MELS = 80
MCD_N_FFT = 512
MCD_WIN = 400  # 25 ms at 16 kHz
MCD_HOP = 80  # 5 ms at 16 kHz
MCD_FLOOR = 1e-5  # amplitude floor before the log, as the mel front end
MCD_CONSTANT = 10.0 * math.sqrt(2.0) / math.log(10.0)
MCD_DEFINITION = (
    "MFCC-style MCD at 16 kHz: |STFT| (n_fft 512, Hann window 400 = 25 ms, hop 80 = 5 ms, centred), "
    "80 Slaney mel filters 0-8000 Hz on the magnitude, natural log (floor 1e-5), DCT-II scaled so that "
    "ln X_m = c0 + 2 * sum_d c_d cos(pi d (m + 1/2) / 80) (the SPTK cepstrum convention); "
    "MCD = 10*sqrt(2)/ln(10) * mean over frames of sqrt(sum_{d=1..24} (c_d - c'_d)^2), c0 excluded; "
    "all frames, aligned 1:1 since copy synthesis keeps time alignment; no DTW"
)

PITCH_FMIN = 50.0
PITCH_FMAX = 600.0
PITCH_FRAME = 1024  # 64 ms at 16 kHz: room for a 50 Hz period
PITCH_HOP = 160  # 10 ms
PITCH_RESOLUTION = 0.1  # semitones per pYIN pitch bin (librosa's default)
PITCH_DEFINITION = (
    f"librosa.pyin at 16 kHz, fmin {PITCH_FMIN:g} Hz, fmax {PITCH_FMAX:g} Hz, frame {PITCH_FRAME} "
    f"(64 ms), hop {PITCH_HOP} (10 ms), resolution {PITCH_RESOLUTION} semitone; RMSE of "
    "1200*log2(f0_generated / f0_reference) over frames voiced in both (octave errors included); "
    "V/UV F1 of the generated voicing decisions against the reference's"
)

DEFINITIONS = {
    "mel_l1": "mean |loss-mel(original) - loss-mel(generated)|: full-band (fmax_for_loss) natural-log mel of "
              "the model's AudioConfig at the model's rate, both cropped to whole hops (the authors' "
              "validation mel error)",
    "mel_l1_input": "mel_l1 on the generator's input mel (fmax, 8 kHz for the presets) instead of the "
                    "full-band loss mel: the band the model is given",
    "mr_stft": "spectral convergence ||S|-|S'||_F/||S||_F + mean |ln|S| - ln|S'||, each averaged over "
               "(n_fft, hop, win) = (1024, 120, 600), (2048, 240, 1200), (512, 50, 240), Hann, centred, at the "
               "model's rate; mr_stft_sc and mr_stft_mag are the two parts",
    "pesq": "ITU-T P.862.2 wide-band PESQ (MOS-LQO) at 16 kHz, `pesq` package",
    "stoi": "classic STOI (not extended) at 10 kHz, `pystoi` package (inputs resampled with soxr)",
    "mcd": MCD_DEFINITION,
    "pitch": PITCH_DEFINITION,
    "resampling": "soxr HQ from the given rate to each metric's rate",
    "alignment": f"both signals cropped to the shorter (they may differ by at most "
                 f"{ALIGNMENT_TOLERANCE_SECONDS * 1000:.0f} ms); frames compared 1:1, no DTW",
}


class MetricSkipped(DataError):
    """A metric cannot score this clip (too short, no speech, ...); `reason` says why."""

    def __init__(self, metric: str, reason: str) -> None:
        super().__init__(f"{metric}: {reason}")
        self.metric = metric
        self.reason = reason


# ---- input handling ------------------------------------------------------------------

def _mono(audio: AudioLike, what: str) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().float().cpu().numpy()
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim > 1:
        if sum(size > 1 for size in array.shape) > 1:
            raise DataError(f"{what}: expected mono audio, got an array shaped {array.shape}")
        array = array.reshape(-1)
    if array.ndim == 0 or array.size == 0:
        raise DataError(f"{what}: the audio holds no samples")
    if not np.isfinite(array).all():
        raise DataError(f"{what}: the audio contains NaN or infinite samples")
    return np.ascontiguousarray(array)


def aligned_pair(reference: AudioLike, generated: AudioLike, sampling_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Both signals as mono float32, cropped to the shorter; DataError when they cannot be aligned."""
    if int(sampling_rate) <= 0:
        raise DataError(f"sampling_rate must be positive, got {sampling_rate}")
    ref = _mono(reference, "reference")
    gen = _mono(generated, "generated")
    if abs(len(ref) - len(gen)) > ALIGNMENT_TOLERANCE_SECONDS * sampling_rate:
        raise DataError(
            f"reference ({len(ref)} samples) and generated ({len(gen)} samples) differ in length by more "
            f"than {ALIGNMENT_TOLERANCE_SECONDS * 1000:.0f} ms at {sampling_rate} Hz: the metrics compare "
            "time-aligned signals (copy synthesis of the reference)"
        )
    length = min(len(ref), len(gen))
    return ref[:length], gen[:length]


def _at_rate(ref: np.ndarray, gen: np.ndarray, from_rate: int, to_rate: int) -> tuple[np.ndarray, np.ndarray]:
    ref, gen = resample(ref, from_rate, to_rate), resample(gen, from_rate, to_rate)
    length = min(len(ref), len(gen))
    return ref[:length], gen[:length]


def _require_samples(metric: str, count: int, needed: int, rate: int) -> None:
    if count < needed:
        raise MetricSkipped(
            metric,
            f"clip too short: {count} samples ({1000 * count / rate:.0f} ms) at {rate} Hz, "
            f"needs at least {needed} ({1000 * needed / rate:.0f} ms)",
        )


@contextmanager
def _one_torch_thread():
    """Run small torch ops on one thread: on a busy CPU, more threads make them spin, not speed up
    (an MR-STFT took 1.1 s with 2 threads vs 0.05 s with 1 on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


# ---- mel L1 ------------------------------------------------------------------------

_MELS: dict[tuple, MelSpectrogram] = {}


def _cached_mel(audio_config: AudioConfig, for_loss: bool) -> MelSpectrogram:
    """The authors' natural-log mel at the model's STFT sizes, full band (loss) or the input band.

    Metrics compare in this one domain whatever the model's own front end
    (log10, decibels, normalised), so toolkits' models are ranked on one scale.
    """
    if not for_loss:
        audio_config = dataclasses.replace(audio_config, fmax_for_loss=audio_config.fmax)
    key = json.dumps(dataclasses.asdict(audio_config), sort_keys=True)
    if key not in _MELS:
        _MELS[key] = MelSpectrogram.from_config(audio_config, for_loss=True)
    return _MELS[key]


def mel_l1(
    reference: AudioLike, generated: AudioLike, audio_config: AudioConfig, sampling_rate: Optional[int] = None,
    *, input_band: bool = False,
) -> float:
    """The authors' validation mel error: L1 between full-band loss mels of whole-hop crops.

    Inputs are at `sampling_rate` (default: the model's) and are resampled to the model's rate.
    `input_band` uses the generator's input mel (`fmax`) instead: the band a model is given,
    which is what to compare on band-limited recordings (nothing above `fmax`).
    """
    rate = audio_config.sampling_rate
    ref, gen = aligned_pair(reference, generated, sampling_rate or rate)
    if sampling_rate and sampling_rate != rate:
        ref, gen = _at_rate(ref, gen, sampling_rate, rate)
    mel = _cached_mel(audio_config, for_loss=not input_band)
    hop = audio_config.hop_length
    length = (len(ref) // hop) * hop
    _require_samples("mel_l1", length, mel.min_samples, rate)
    with torch.inference_mode(), _one_torch_thread():
        mel_ref = mel(torch.from_numpy(ref[:length]))
        mel_gen = mel(torch.from_numpy(gen[:length]))
    return float((mel_ref - mel_gen).abs().mean())


# ---- multi-resolution STFT -----------------------------------------------------------

class MultiResolutionSTFT(NamedTuple):
    """Parallel WaveGAN's auxiliary distance; `total` = spectral convergence + log magnitude."""

    spectral_convergence: float
    log_magnitude: float

    @property
    def total(self) -> float:
        return self.spectral_convergence + self.log_magnitude


def _stft_magnitude(audio: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    spec = torch.stft(audio, n_fft, hop, win, window=torch.hann_window(win), center=True,
                      pad_mode="reflect", return_complex=True)
    return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=1e-7))


def multi_resolution_stft(reference: AudioLike, generated: AudioLike, sampling_rate: int = 22050) -> MultiResolutionSTFT:
    """Spectral convergence and log-magnitude L1 averaged over the usual three resolutions.

    The resolutions are in samples, so the distance is computed at the given rate.
    """
    ref, gen = aligned_pair(reference, generated, sampling_rate)
    _require_samples("mr_stft", len(ref), max(r[0] for r in STFT_RESOLUTIONS), sampling_rate)
    sc_total, mag_total = 0.0, 0.0
    ref_t, gen_t = torch.from_numpy(ref), torch.from_numpy(gen)
    with torch.inference_mode(), _one_torch_thread():
        for n_fft, hop, win in STFT_RESOLUTIONS:
            s_ref = _stft_magnitude(ref_t, n_fft, hop, win)
            s_gen = _stft_magnitude(gen_t, n_fft, hop, win)
            sc_total += float(torch.linalg.norm(s_ref - s_gen) / torch.linalg.norm(s_ref))
            mag_total += float((s_ref.log() - s_gen.log()).abs().mean())
    count = len(STFT_RESOLUTIONS)
    return MultiResolutionSTFT(sc_total / count, mag_total / count)


# ---- PESQ and STOI ---------------------------------------------------------------------

def pesq_wb(reference: AudioLike, generated: AudioLike, sampling_rate: int) -> float:
    """Wide-band PESQ (MOS-LQO, about 1.04 to 4.64) at 16 kHz."""
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    ref, gen = aligned_pair(reference, generated, sampling_rate)
    ref, gen = _at_rate(ref, gen, sampling_rate, PESQ_RATE)
    _require_samples("pesq", len(ref), PESQ_RATE // 4, PESQ_RATE)  # the P.862 code needs 1/4 s
    if not np.any(gen):
        raise MetricSkipped("pesq", "undefined: the generated audio is digital silence")
    try:
        return float(pesq(PESQ_RATE, ref.astype(np.float64), gen.astype(np.float64), "wb"))
    except NoUtterancesError:
        raise MetricSkipped("pesq", "no utterance detected in the reference (silence?)") from None
    except BufferTooShortError:
        raise MetricSkipped("pesq", "clip too short for PESQ (needs 1/4 s)") from None


def stoi(reference: AudioLike, generated: AudioLike, sampling_rate: int) -> float:
    """Classic STOI (0 to 1) at 10 kHz."""
    from pystoi import stoi as pystoi_stoi

    ref, gen = aligned_pair(reference, generated, sampling_rate)
    ref, gen = _at_rate(ref, gen, sampling_rate, STOI_RATE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi_stoi(ref.astype(np.float64), gen.astype(np.float64), STOI_RATE, extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        raise MetricSkipped(
            "stoi",
            "fewer than 30 STOI frames (about 0.4 s) left after removing frames 40 dB below the loudest",
        )
    return value


# ---- mel-cepstral distortion ------------------------------------------------------------

_MCD_BASIS: Optional[np.ndarray] = None


def mel_cepstrum(audio: AudioLike, sampling_rate: int) -> np.ndarray:
    """Cepstra c0..c24 [frames, 25] as `MCD_DEFINITION` states, at 16 kHz."""
    global _MCD_BASIS
    import librosa
    import scipy.fft

    samples = resample(_mono(audio, "audio"), sampling_rate, MCD_RATE)
    _require_samples("mcd", len(samples), MCD_WIN, MCD_RATE)
    if _MCD_BASIS is None:
        _MCD_BASIS = librosa.filters.mel(sr=MCD_RATE, n_fft=MCD_N_FFT, n_mels=MCD_N_MELS, fmin=0.0, fmax=MCD_RATE / 2)
    magnitude = np.abs(librosa.stft(samples.astype(np.float64), n_fft=MCD_N_FFT, hop_length=MCD_HOP,
                                    win_length=MCD_WIN, window="hann", center=True, pad_mode="reflect"))
    log_mel = np.log(np.maximum(_MCD_BASIS @ magnitude, MCD_FLOOR))  # [80, frames]
    # unnormalised DCT-II / (2M) inverts as ln X_m = c0 + 2 sum_d c_d cos(pi d (m + 1/2) / M)
    cepstra = scipy.fft.dct(log_mel, type=2, axis=0, norm=None) / (2 * MCD_N_MELS)
    return cepstra[: MCD_ORDER + 1].T


def mcd(reference: AudioLike, generated: AudioLike, sampling_rate: int) -> float:
    """Mel-cepstral distortion in dB (c1..c24, frames aligned 1:1, no DTW)."""
    ref, gen = aligned_pair(reference, generated, sampling_rate)
    c_ref, c_gen = mel_cepstrum(ref, sampling_rate), mel_cepstrum(gen, sampling_rate)
    frames = min(len(c_ref), len(c_gen))
    diff = c_ref[:frames, 1:] - c_gen[:frames, 1:]
    return float(MCD_CONSTANT * np.sqrt((diff**2).sum(axis=1)).mean())


# ---- pitch -----------------------------------------------------------------------------

@dataclass
class PitchTrack:
    """pYIN output at 10 ms frames: f0 in Hz (NaN where unvoiced) and voicing decisions."""

    f0: np.ndarray
    voiced: np.ndarray


class PitchMetrics(NamedTuple):
    """`rmse_cents` is NaN when no frame is voiced in both tracks (`voiced_in_both` = 0)."""

    rmse_cents: float
    vuv_f1: float
    voiced_in_both: int


def pitch_track(audio: AudioLike, sampling_rate: int) -> PitchTrack:
    """pYIN at 16 kHz with speech bounds (see `PITCH_DEFINITION`); cost is bounded by the bounds."""
    import librosa

    samples = resample(_mono(audio, "audio"), sampling_rate, PITCH_RATE)
    _require_samples("pitch", len(samples), PITCH_FRAME, PITCH_RATE)
    f0, voiced, _ = librosa.pyin(
        samples, fmin=PITCH_FMIN, fmax=PITCH_FMAX, sr=PITCH_RATE, frame_length=PITCH_FRAME,
        hop_length=PITCH_HOP, resolution=PITCH_RESOLUTION, center=True,
    )
    return PitchTrack(f0=f0, voiced=np.asarray(voiced, dtype=bool))


def warm_up_pitch() -> None:
    """Load pYIN's compiled kernels now (seconds, once per process), e.g. before forking workers."""
    t = np.arange(2 * PITCH_FRAME) / PITCH_RATE
    pitch_track(0.1 * np.sin(2 * np.pi * 200.0 * t).astype(np.float32), PITCH_RATE)


def compare_pitch(reference: PitchTrack, generated: PitchTrack) -> PitchMetrics:
    """RMSE (cents) over frames voiced in both, and V/UV F1 against the reference's voicing."""
    frames = min(len(reference.voiced), len(generated.voiced))
    ref_v, gen_v = reference.voiced[:frames], generated.voiced[:frames]
    if not ref_v.any():
        raise MetricSkipped("pitch", "no voiced frames in the reference")
    true_pos = int((ref_v & gen_v).sum())
    f1 = 2 * true_pos / (2 * true_pos + int((gen_v & ~ref_v).sum()) + int((ref_v & ~gen_v).sum()))
    both = ref_v & gen_v
    if not both.any():
        return PitchMetrics(float("nan"), f1, 0)
    cents = 1200.0 * np.log2(generated.f0[:frames][both] / reference.f0[:frames][both])
    return PitchMetrics(float(np.sqrt(np.mean(cents**2))), f1, int(both.sum()))


def pitch_metrics(reference: AudioLike, generated: AudioLike, sampling_rate: int) -> PitchMetrics:
    """(rmse_cents, vuv_f1, voiced_in_both) of the generated pitch against the reference's."""
    ref, gen = aligned_pair(reference, generated, sampling_rate)
    return compare_pitch(pitch_track(ref, sampling_rate), pitch_track(gen, sampling_rate))


__all__ = [
    "DEFINITIONS",
    "MCD_DEFINITION",
    "MetricSkipped",
    "MultiResolutionSTFT",
    "PITCH_DEFINITION",
    "PitchMetrics",
    "PitchTrack",
    "aligned_pair",
    "compare_pitch",
    "mcd",
    "mel_cepstrum",
    "mel_l1",
    "multi_resolution_stft",
    "pesq_wb",
    "pitch_metrics",
    "pitch_track",
    "stoi",
]
