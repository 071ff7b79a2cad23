"""Spectrogram pictures, shared by synthesis, training logs and evaluation.

Panels in one figure share a colour scale, so that two spectrograms can be
compared by eye; a difference panel uses its own diverging scale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_array(mel: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(mel, torch.Tensor):
        mel = mel.detach().float().cpu().numpy()
    mel = np.asarray(mel, dtype=np.float32)
    while mel.ndim > 2:
        mel = mel[0]
    return mel


def spectrogram_figure(
    mels: Sequence[np.ndarray | torch.Tensor],
    titles: Sequence[str],
    *,
    columns: bool = False,
    difference: Optional[tuple[int, int]] = None,
    frame_seconds: Optional[float] = None,
    suptitle: Optional[str] = None,
):
    """One panel per log-mel [n_mels, frames] with a common colour scale.

    `columns` lays panels side by side instead of stacked; `difference=(i, j)`
    adds a panel of mels[i] - mels[j] (cropped to the shorter one).
    """
    plt = _matplotlib()
    arrays = [_as_array(m) for m in mels]
    panels = list(zip(arrays, titles))
    vmin = min(float(a.min()) for a in arrays)
    vmax = max(float(a.max()) for a in arrays)
    count = len(panels) + (1 if difference else 0)
    shape = (1, count) if columns else (count, 1)
    size = (5 * count, 3.2) if columns else (10, 2.6 * count)
    fig, axes = plt.subplots(*shape, figsize=size, squeeze=False, layout="constrained")
    axes = axes.reshape(-1)
    extent_of = (lambda a: [0, a.shape[1] * frame_seconds, 0, a.shape[0]]) if frame_seconds else (lambda a: None)
    image = None
    for ax, (array, title) in zip(axes, panels):
        image = ax.imshow(array, origin="lower", aspect="auto", vmin=vmin, vmax=vmax,
                          interpolation="none", extent=extent_of(array))
        ax.set_title(title)
        ax.set_ylabel("mel bin")
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(panels)]), label="log magnitude", shrink=0.9)
    if difference:
        a, b = arrays[difference[0]], arrays[difference[1]]
        frames = min(a.shape[1], b.shape[1])
        diff = a[:, :frames] - b[:, :frames]
        bound = max(float(np.abs(diff).max()), 1e-6)
        ax = axes[-1]
        diff_image = ax.imshow(diff, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound,
                               interpolation="none", extent=extent_of(diff))
        ax.set_title(f"{titles[difference[0]]} - {titles[difference[1]]}")
        fig.colorbar(diff_image, ax=ax, label="difference")
    for ax in axes:
        ax.set_xlabel("seconds" if frame_seconds else "frame")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write a figure as PNG and free it."""
    plt = _matplotlib()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def read_training_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar a run logged to TensorBoard (RUN_DIR/logs), as tag -> [(step, value)], oldest first."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {}
    for events in sorted(Path(run_dir, "logs").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(tag):
                series.setdefault(tag, {})[int(event.step)] = float(event.value)  # a resumed run wins
    return {tag: sorted(values.items()) for tag, values in series.items()}


CURVE_PANELS = (
    ("generator losses", ("train/g_adv", "train/g_fm", "train/g_total")),
    ("mel L1 (training crops)", ("train/mel_l1",)),
    ("discriminator loss", ("train/d_total", "train/d_mpd", "train/d_msd")),
    ("validation mel L1", ("val/mel_l1",)),
    ("NVIDIA validation (8192-sample crops, x45)", ("val/nvidia_crops_mel_l1_x45",)),
)


def plot_training_curves(run_dir: str | Path, path: str | Path, smooth: int = 25) -> Optional[Path]:
    """Loss and validation curves of a run as one PNG; None when the run logged nothing yet.

    Training losses are drawn raw (faint) and as a running mean of `smooth` logged points.
    """
    series = read_training_scalars(run_dir)
    panels = [(title, [t for t in tags if t in series]) for title, tags in CURVE_PANELS]
    panels = [(title, tags) for title, tags in panels if tags]
    if not panels:
        return None
    plt = _matplotlib()
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), sharex=True, squeeze=False)
    for axis, (title, tags) in zip(axes[:, 0], panels):
        for tag in tags:
            steps, values = zip(*series[tag])
            values = np.asarray(values)
            if tag.startswith("train/") and len(values) > smooth:
                kernel = np.ones(smooth) / smooth
                line, = axis.plot(steps, values, alpha=0.25, linewidth=0.8)
                axis.plot(steps[smooth - 1:], np.convolve(values, kernel, mode="valid"), color=line.get_color(),
                          label=f"{tag} (mean of {smooth})")
            else:
                axis.plot(steps, values, marker="o" if len(values) < 40 else None, label=tag)
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[-1, 0].set_xlabel("step")
    figure.tight_layout()
    from .files import atomic_write

    path = Path(path)
    atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=110, format="png"))
    plt.close(figure)
    return path
