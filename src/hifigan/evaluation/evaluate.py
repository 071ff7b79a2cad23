"""`evaluate`: copy synthesis of real clips, scored against the originals, beside Griffin-Lim.

Each clip is loaded at the model's rate (soxr), peak-normalised to 0.95 as the
authors' data loader does, turned into the generator's input mel, and
resynthesised by the vocoder; Griffin-Lim inverts the same mel. Both outputs
are scored against the original cropped to frames * hop. The generator runs
in this process; Griffin-Lim and the metrics (pYIN, PESQ, ... are
single-threaded) run in `jobs` worker processes. A metric that cannot score a
clip is recorded as skipped with its reason, never silently dropped.
"""
from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Optional, Sequence

import numpy as np

from ..audio import AUDIO_SUFFIXES, MelSpectrogram, find_audio_files, load_audio, save_audio
from ..config import AudioConfig
from ..errors import ConfigError, DataError
from . import metrics as M
from .griffin_lim import GriffinLimSettings, griffin_lim

GENERATED = "hifigan"
GRIFFIN_LIM = "griffin-lim"
BASELINES = (GRIFFIN_LIM,)


class MetricSpec(NamedTuple):
    key: str
    label: str
    higher_is_better: bool
    digits: int
    in_table: bool = True


METRICS = (
    MetricSpec("mel_l1", "mel L1", False, 4),
    MetricSpec("mel_l1_input", "mel L1 <fmax", False, 4),
    MetricSpec("mr_stft", "MR-STFT", False, 3),
    MetricSpec("pesq", "PESQ", True, 3),
    MetricSpec("stoi", "STOI", True, 4),
    MetricSpec("mcd", "MCD dB", False, 3),
    MetricSpec("f0_rmse_cents", "F0 RMSE c", False, 1),
    MetricSpec("vuv_f1", "V/UV F1", True, 4),
    MetricSpec("mr_stft_sc", "MR-STFT SC", False, 4, in_table=False),
    MetricSpec("mr_stft_mag", "MR-STFT mag", False, 4, in_table=False),
)
METRIC_KEYS = tuple(m.key for m in METRICS)


@dataclass
class EvaluationSettings:
    """What `evaluate` does besides the metrics themselves."""

    baseline: Optional[str] = GRIFFIN_LIM  # or None
    griffin_lim: GriffinLimSettings = field(default_factory=GriffinLimSettings)
    peak_normalize: Optional[float] = 0.95  # None keeps each file's level
    plots: int = 3  # spectrogram PNGs for the first N clips
    jobs: int = 2  # worker processes for Griffin-Lim and the metrics
    save_audio: bool = False

    def validate(self) -> "EvaluationSettings":
        if self.baseline not in (None, *BASELINES):
            raise ConfigError(f"unknown baseline {self.baseline!r}; choose from {', '.join(BASELINES)} or none")
        if self.peak_normalize is not None and not 0 < self.peak_normalize <= 1:
            raise ConfigError(f"peak_normalize must lie in (0, 1], got {self.peak_normalize}")
        if self.plots < 0 or self.jobs < 1:
            raise ConfigError(f"plots must be >= 0 and jobs >= 1 (got plots={self.plots}, jobs={self.jobs})")
        return self


@dataclass
class SystemScores:
    """One system's metric values on one clip, and the metrics it was skipped for (with why)."""

    values: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class ClipResult:
    name: str
    path: str
    seconds: float
    systems: dict[str, SystemScores]
    original_rate: int = 0  # the file's own rate (clips are scored at the model's)


@dataclass
class MetricSummary:
    """Mean over the clips scored, with the half-width of its 95% t-interval (None for n < 2)."""

    mean: Optional[float]
    ci95: Optional[float]
    n: int
    skipped: int


def summarize(values: Sequence[float], skipped: int = 0) -> MetricSummary:
    from scipy import stats

    n = len(values)
    if n == 0:
        return MetricSummary(None, None, 0, skipped)
    mean = float(np.mean(values))
    if n < 2:
        return MetricSummary(mean, None, 1, skipped)
    sem = float(np.std(values, ddof=1)) / math.sqrt(n)
    return MetricSummary(mean, float(stats.t.ppf(0.975, n - 1) * sem), n, skipped)


# ---- scoring one clip -------------------------------------------------------------

def score_clip(
    reference: M.AudioLike,
    generated: M.AudioLike,
    sampling_rate: int,
    audio_config: AudioConfig,
    reference_pitch: "M.PitchTrack | M.MetricSkipped | None" = None,
) -> SystemScores:
    """Every metric of one generated clip against its reference; skips are recorded, not raised.

    `reference_pitch` reuses a pYIN track (or the skip it raised) across systems.
    """
    ref, gen = M.aligned_pair(reference, generated, sampling_rate)
    scores = SystemScores()

    def attempt(keys: tuple[str, ...], compute) -> None:
        try:
            result = compute()
        except M.MetricSkipped as skip:
            scores.skipped.update({key: skip.reason for key in keys})
            return
        scores.values.update(dict(zip(keys, result)))

    attempt(("mel_l1",), lambda: (M.mel_l1(ref, gen, audio_config, sampling_rate),))
    attempt(("mel_l1_input",), lambda: (M.mel_l1(ref, gen, audio_config, sampling_rate, input_band=True),))

    def mr_stft():
        distance = M.multi_resolution_stft(ref, gen, sampling_rate)
        return distance.total, distance.spectral_convergence, distance.log_magnitude

    attempt(("mr_stft", "mr_stft_sc", "mr_stft_mag"), mr_stft)
    attempt(("pesq",), lambda: (M.pesq_wb(ref, gen, sampling_rate),))
    attempt(("stoi",), lambda: (M.stoi(ref, gen, sampling_rate),))
    attempt(("mcd",), lambda: (M.mcd(ref, gen, sampling_rate),))

    try:
        track = reference_pitch if reference_pitch is not None else M.pitch_track(ref, sampling_rate)
        if isinstance(track, M.MetricSkipped):
            raise track
        pitch = M.compare_pitch(track, M.pitch_track(gen, sampling_rate))
    except M.MetricSkipped as skip:
        scores.skipped.update({"f0_rmse_cents": skip.reason, "vuv_f1": skip.reason})
    else:
        scores.values["vuv_f1"] = pitch.vuv_f1
        if pitch.voiced_in_both:
            scores.values["f0_rmse_cents"] = pitch.rmse_cents
        else:
            scores.skipped["f0_rmse_cents"] = "no frame is voiced in both the reference and the generated audio"
    return scores


@dataclass
class _Job:
    reference: np.ndarray
    generated: np.ndarray
    mel: np.ndarray
    audio: AudioConfig
    griffin_lim: Optional[GriffinLimSettings]
    return_baseline: bool = False  # send the Griffin-Lim audio back (plots, saved audio)


def _run_job(job: _Job) -> tuple[dict[str, SystemScores], Optional[np.ndarray]]:
    rate = job.audio.sampling_rate
    try:
        ref_pitch: Any = M.pitch_track(job.reference, rate)
    except M.MetricSkipped as skip:
        ref_pitch = skip
    systems = {GENERATED: score_clip(job.reference, job.generated, rate, job.audio, ref_pitch)}
    baseline_audio = None
    if job.griffin_lim is not None:
        baseline_audio = griffin_lim(job.mel, job.audio, job.griffin_lim)
        systems[GRIFFIN_LIM] = score_clip(job.reference, baseline_audio, rate, job.audio, ref_pitch)
    return systems, baseline_audio if job.return_baseline else None


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker, as DataLoader workers do


# ---- inputs -------------------------------------------------------------------------

def expand_audio_arguments(items: Iterable[str | Path]) -> list[Path]:
    """Audio files as given; folders searched recursively; `.txt` files read as lists of paths
    relative to the list (like the corpus `val.txt`)."""
    paths: list[Path] = []
    for item in items:
        item = Path(item)
        if item.is_dir():
            found = find_audio_files(item)
            if not found:
                raise DataError(f"{item}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in this folder")
            paths.extend(found)
        elif item.suffix.lower() == ".txt":
            if not item.is_file():
                raise DataError(f"{item}: list file not found")
            lines = [line.strip() for line in item.read_text().splitlines()]
            for line in lines:
                if line and not line.startswith("#"):
                    listed = item.parent / line
                    if not listed.is_file():
                        raise DataError(f"{listed}: file not found (listed in {item})")
                    paths.append(listed)
        elif not item.is_file():
            raise DataError(f"{item}: file not found")
        else:
            paths.append(item)
    if not paths:
        raise DataError("no audio files to evaluate")
    return paths


def _unique_names(paths: Sequence[Path]) -> list[str]:
    names, seen = [], {}
    for path in paths:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


# ---- the report --------------------------------------------------------------------

@dataclass
class EvaluationReport:
    clips: list[ClipResult]
    systems: list[str]
    settings: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, MetricSummary]]:
        out: dict[str, dict[str, MetricSummary]] = {}
        for system in self.systems:
            out[system] = {}
            for key in METRIC_KEYS:
                values = [c.systems[system].values[key] for c in self.clips if key in c.systems[system].values]
                skipped = sum(key in c.systems[system].skipped for c in self.clips)
                out[system][key] = summarize(values, skipped)
        return out

    def upsampling_note(self) -> str:
        """Clips upsampled to the model's rate hold nothing above their own Nyquist frequency; the
        log-magnitude metrics (mel L1, MR-STFT) count whatever a model generates there."""
        rate = self.settings.get("clips", {}).get("loaded_at_hz", 0)
        low = sorted({c.original_rate for c in self.clips if 0 < c.original_rate < rate})
        if not low:
            return ""
        count = sum(0 < c.original_rate < rate for c in self.clips)
        return (f"{count} clip(s) were upsampled from {', '.join(map(str, low))} Hz to {rate} Hz: they hold "
                f"nothing above {low[-1] // 2} Hz, and the full-band mel L1 and MR-STFT count any energy a "
                "model generates there (log magnitudes of near-silence)")

    def skipped(self) -> list[dict[str, str]]:
        return [
            {"file": clip.name, "system": system, "metric": key, "reason": reason}
            for clip in self.clips
            for system, scores in clip.systems.items()
            for key, reason in scores.skipped.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": {**self.settings, "skipped": self.skipped(), "note": self.upsampling_note()},
            "summary": {s: {k: asdict(v) for k, v in m.items()} for s, m in self.summary().items()},
            "files": [asdict(clip) for clip in self.clips],
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def write_csv(self, path: str | Path) -> Path:
        """One row per (file, system): every metric (empty when skipped) and the skip reasons."""
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "path", "seconds", "system", *METRIC_KEYS, "skipped"])
            for clip in self.clips:
                for system in self.systems:
                    scores = clip.systems[system]
                    writer.writerow(
                        [clip.name, clip.path, f"{clip.seconds:.3f}", system]
                        + [_plain(scores.values.get(key)) for key in METRIC_KEYS]
                        + ["; ".join(f"{k}: {r}" for k, r in scores.skipped.items())]
                    )
        return path

    def format_table(self, per_file: bool = True) -> str:
        """Per-file values for each system, then mean +- 95% CI per metric and system."""
        specs = [m for m in METRICS if m.in_table]
        summary = self.summary()
        name_width = max([len("mean +- 95% CI")] + [len(c.name) for c in self.clips])
        widths = [max(len(m.label), 15) for m in specs]
        lines = []

        def row(first: str, cells: list[str]) -> str:
            return "  ".join([first.ljust(name_width)] + [c.rjust(w) for c, w in zip(cells, widths)])

        header = row("", [m.label for m in specs])
        for system in self.systems:
            lines += ["", f"== {SYSTEM_TITLES.get(system, system)} ==", header]
            if per_file:
                for clip in self.clips:
                    scores = clip.systems[system]
                    cells = [
                        f"{scores.values[m.key]:.{m.digits}f}" if m.key in scores.values else "skipped"
                        for m in specs
                    ]
                    lines.append(row(clip.name, cells))
            lines.append(row("mean +- 95% CI", [_mean_ci(summary[system][m.key], m.digits) for m in specs]))
            lines.append(row("clips scored", [str(summary[system][m.key].n) for m in specs]))
        lines += [
            "",
            "lower is better: " + ", ".join(m.label for m in specs if not m.higher_is_better)
            + "; higher is better: " + ", ".join(m.label for m in specs if m.higher_is_better),
        ]
        note = self.upsampling_note()
        if note:
            lines.append("note: " + note)
        skipped = self.skipped()
        if skipped:
            lines.append("skipped:")
            lines += [f"  {s['file']} [{s['system']}] {s['metric']}: {s['reason']}" for s in skipped]
        return "\n".join(lines)


SYSTEM_TITLES = {GENERATED: "HiFi-GAN copy synthesis", GRIFFIN_LIM: "Griffin-Lim from the same mel"}


def _plain(value: Optional[float]) -> str:
    return "" if value is None else repr(float(value))


def _mean_ci(summary: MetricSummary, digits: int) -> str:
    if summary.mean is None:
        return "-"
    if summary.ci95 is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f}+-{summary.ci95:.{digits}f}"


# ---- evaluate ------------------------------------------------------------------------

def evaluate(
    vocoder,
    audio_files: Sequence[str | Path],
    out_dir: Optional[str | Path] = None,
    settings: Optional[EvaluationSettings] = None,
    model_label: str = "",
    progress: bool = True,
) -> EvaluationReport:
    """Copy-synthesise and score `audio_files` with `vocoder` (a `hifigan.Vocoder`).

    With `out_dir`, writes metrics.json, metrics.csv, plots/<clip>.png (the first
    `settings.plots` clips scored) and, with `settings.save_audio`, audio/<clip>.<system>.wav.
    """
    import torch
    from tqdm.auto import tqdm

    settings = (settings or EvaluationSettings()).validate()
    paths = [Path(p) for p in audio_files]
    if not paths:
        raise DataError("no audio files to evaluate")
    audio = vocoder.config.audio
    rate, hop = audio.sampling_rate, audio.hop_length
    min_samples = MelSpectrogram.from_config(audio).min_samples
    systems = [GENERATED] + ([settings.baseline] if settings.baseline else [])
    gl_settings = settings.griffin_lim if settings.baseline == GRIFFIN_LIM else None
    names = _unique_names(paths)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    jobs = min(settings.jobs, len(paths), os.cpu_count() or 1)
    pool = None
    if jobs > 1:
        M.warm_up_pitch()  # compiled once here, inherited by forked workers
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = multiprocessing.get_context(method).Pool(jobs, initializer=_init_worker)

    bar = tqdm(total=len(paths), desc="evaluate", unit="clip", disable=not progress)
    clips: list[ClipResult] = []
    in_flight: deque[tuple[ClipResult, Any, Optional[_Job], bool]] = deque()
    planned_plots = 0

    def finish_oldest() -> None:
        clip, result, job, plot = in_flight.popleft()
        clip.systems, baseline_audio = result.get() if pool is not None else result
        if out is not None and job is not None:
            _write_outputs(out, clip, job, baseline_audio, plot, settings)

    threads_before = torch.get_num_threads()
    if pool is not None:  # leave the cores the workers use to them: oversubscribed torch threads spin
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - jobs))
    try:
        for path, name in zip(paths, names):
            samples, original_rate = _load_clip(path, rate, settings.peak_normalize)
            clip = ClipResult(name, str(path), len(samples) / rate, {}, original_rate)
            clips.append(clip)
            if len(samples) < min_samples:
                reason = (f"clip too short for copy synthesis: {len(samples)} samples at {rate} Hz, the mel "
                          f"front end needs {min_samples}")
                clip.systems = {s: SystemScores(skipped={k: reason for k in METRIC_KEYS}) for s in systems}
                bar.update(1)
                continue
            mel = vocoder.mel(samples)
            generated = vocoder(mel).numpy()
            plot = out is not None and planned_plots < settings.plots
            planned_plots += plot
            keep_audio = plot or (out is not None and settings.save_audio)
            job = _Job(samples[: mel.shape[-1] * hop], generated, mel.cpu().numpy(), audio, gl_settings, keep_audio)
            if pool is None:
                result: Any = _run_job(job)
                bar.update(1)
            else:
                result = pool.apply_async(_run_job, (job,), callback=lambda _: bar.update(1))
            # keep the audio only where a picture or a file still needs it
            in_flight.append((clip, result, job if keep_audio else None, plot))
            while len(in_flight) > 2 * jobs:  # bound the audio queued for the workers
                finish_oldest()
        while in_flight:
            finish_oldest()
    finally:
        torch.set_num_threads(threads_before)
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()

    report = EvaluationReport(clips, systems, _settings_record(settings, audio, model_label))
    if out is not None:
        report.files["json"] = str(report.write_json(out / "metrics.json"))
        report.files["csv"] = str(report.write_csv(out / "metrics.csv"))
        plots = sorted((out / "plots").glob("*.png")) if (out / "plots").exists() else []
        report.files["plots"] = str(out / "plots") if plots else ""
    return report


def _load_clip(path: Path, rate: int, peak_normalize: Optional[float]) -> tuple[np.ndarray, int]:
    """Samples at the model's rate, peak-normalised as the authors' loader does; and the file's rate."""
    loaded = load_audio(path, rate)
    samples = loaded.samples
    peak = float(np.abs(samples).max())
    if peak_normalize is not None and peak > 0:
        samples = samples * np.float32(peak_normalize / peak)
    return samples, loaded.original_rate


def _write_outputs(out: Path, clip: ClipResult, job: _Job, baseline_audio: Optional[np.ndarray],
                   plot: bool, settings: EvaluationSettings) -> None:
    rate = job.audio.sampling_rate
    outputs = {"original": job.reference, GENERATED: job.generated}
    if baseline_audio is not None:
        outputs[GRIFFIN_LIM] = baseline_audio
    if settings.save_audio:
        for label, samples in outputs.items():
            save_audio(out / "audio" / f"{clip.name}.{label}.wav", samples, rate)
    if plot:
        from ..plotting import save_figure, spectrogram_figure

        mel = M._cached_mel(job.audio, for_loss=True)
        mels = [mel(_tensor(samples))[0] for samples in outputs.values()]
        titles = ["original", "HiFi-GAN copy synthesis"]
        if baseline_audio is not None:
            titles.append(f"Griffin-Lim ({settings.griffin_lim.iterations} iterations)")
        fig = spectrogram_figure(mels, titles, difference=(0, 1), frame_seconds=job.audio.hop_length / rate,
                                 suptitle=f"{clip.name}: full-band loss mel (natural log)")
        save_figure(fig, out / "plots" / f"{clip.name}.png")


def _tensor(samples: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("hifigan", "torch", "librosa", "pesq", "pystoi", "soxr"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _settings_record(settings: EvaluationSettings, audio: AudioConfig, model_label: str) -> dict[str, Any]:
    return {
        "model": model_label,
        "versions": _versions(),
        "audio_config": asdict(audio),
        "clips": {
            "loaded_at_hz": audio.sampling_rate,
            "resampling": "soxr HQ",
            "peak_normalize": settings.peak_normalize,
            "copy_synthesis": "the generator's input mel (fmax) of the clip -> generator; the original is "
                              "cropped to frames * hop samples",
        },
        "metrics": M.DEFINITIONS | {"mel_l1_rate_hz": audio.sampling_rate, "mr_stft_rate_hz": audio.sampling_rate},
        "griffin_lim": settings.griffin_lim.describe() if settings.baseline == GRIFFIN_LIM else None,
        "confidence_interval": "95% two-sided Student t interval of the mean over the clips scored (n-1 dof)",
        "alignment": "copy synthesis keeps time alignment: all frame-based metrics compare frames 1:1 (no DTW)",
    }
