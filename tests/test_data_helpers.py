"""Helpers (no tests) for the data tests: speech-like tones in every format, and bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float, rate: int, channels: int = 1, seed: int = 0, level: float = 0.5) -> np.ndarray:
    """A reproducible tone plus noise, [T] or [T, channels]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    base = np.sin(2 * np.pi * (180 + 40 * seed) * t) * 0.6 + 0.1 * rng.standard_normal(t.shape)
    base = (level * base / np.abs(base).max()).astype(np.float32)
    if channels == 1:
        return base
    return np.stack([base * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1)


def write(path: Path, data: np.ndarray, rate: int, subtype: str | None = None, format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype, format=format)
    return path


def make_bad_files(folder: Path, rate: int = 22050) -> dict[str, Path]:
    """The zoo: empty, truncated header, text renamed .wav, NaN samples, 1 sample, silent."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["empty"] = folder / "empty.wav"
    files["empty"].write_bytes(b"")
    good = write(folder / "tmp_good.wav", tone(0.5, rate), rate)
    files["truncated"] = folder / "truncated.wav"
    files["truncated"].write_bytes(good.read_bytes()[:20])
    good.unlink()
    files["text"] = folder / "notes.wav"
    files["text"].write_text("these are my recording notes, not audio\n" * 20)
    nan = tone(0.5, rate)
    nan[100] = np.nan
    files["nan"] = write(folder / "nan.wav", nan, rate, subtype="FLOAT")
    files["one_sample"] = write(folder / "one_sample.wav", np.zeros(1, np.float32) + 0.1, rate)
    files["silent"] = write(folder / "silent.wav", np.zeros(rate, np.float32), rate)
    return files


def make_lj(root: Path, count: int = 12, seconds: float = 0.2, rate: int = 22050) -> Path:
    """A tiny LJ Speech folder: metadata.csv (ID|text|normalised) + wavs/ID.wav."""
    lines = []
    for i in range(count):
        uid = f"LJ001-{i:04d}"
        write(root / "wavs" / f"{uid}.wav", tone(seconds, rate, seed=i), rate)
        lines.append(f"{uid}|Text number {i}.|Text number {i}.")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root
