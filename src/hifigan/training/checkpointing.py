"""Run checkpoints: atomic writes, every N steps plus the last, keeping the newest K.

Lightning's TorchCheckpointIO serialises to memory and writes through an
fsspec transaction: a temporary file in the system temp folder, then
`shutil.move` onto the checkpoint, which is a copy (not atomic) when that
folder is on another file system, and never fsync'd. Local paths here go
through `atomic_torch_save` instead: temporary file in the same folder, fsync,
rename, so a SIGKILL or power loss during a save leaves the previous
checkpoint intact and never a truncated file. Remote URLs keep Lightning's
behaviour.

Each save also refreshes `generator.pt`, the inference export (EMA weights
when EMA is on), so a run that dies still leaves a usable generator. A save
that fails (a full disk) stops training with a CheckpointError naming the
file; the previous checkpoint and export are left as they were.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..checkpoints import atomic_torch_save, save_generator
from ..errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
EXPORT_NAME = "generator.pt"
_STEP_FILE = re.compile(r"^step-(\d+)\.ckpt$")


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local writes are atomic (see module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.ckpt"


def checkpoint_step(name: str) -> Optional[int]:
    """The step in a checkpoint's file name (`step-XXXXXXXX.ckpt`), None for any other name."""
    match = _STEP_FILE.match(name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's checkpoints, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        step = checkpoint_step(path.name)
        if step is not None and path.is_file():
            found.append((step, path))
    return sorted(found)


def loader_reason(exc: BaseException) -> str:
    """An exception as one short line: its first sentence (torch's messages run on, with ANSI bold)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    first = re.split(r"(?<=[.!?])\s", text.splitlines()[0])[0].rstrip(".") if text else ""
    first = first if len(first) <= 100 else first[:97] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _load_training(path: Path) -> tuple[Optional[dict[str, Any]], str]:
    """(the checkpoint, memory-mapped: its tensors are not read), or (None, why it cannot be resumed from)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        return None, loader_reason(exc)
    if not isinstance(data, dict) or data.get("kind") != "training" or "state_dict" not in data:
        return None, "not a training checkpoint of this package"
    return data, ""


def read_training_header(path: str | Path) -> dict[str, Any]:
    """One of our training checkpoints (memory-mapped), or a CheckpointError saying why not."""
    data, problem = _load_training(Path(path))
    if data is None:
        raise CheckpointError(f"cannot resume from {path}: {problem}; resume needs a file from RUN_DIR/checkpoints/")
    return data


def scan_checkpoints(run_dir: str | Path) -> tuple[Optional[Path], list[tuple[Path, str]]]:
    """The newest checkpoint that reads as a training checkpoint, and the newer ones that do not (with why).

    We write atomically, so an unreadable one was damaged afterwards (a copy cut short, a bad disk).
    """
    unreadable: list[tuple[Path, str]] = []
    for _, path in reversed(list_checkpoints(run_dir)):
        data, problem = _load_training(path)
        if data is None:
            unreadable.append((path, problem))
            continue
        return path, unreadable
    return None, unreadable


def latest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    """The newest checkpoint that loads; unreadable ones are skipped (see scan_checkpoints)."""
    return scan_checkpoints(run_dir)[0]


def save_failed(path: str | Path, exc: OSError) -> CheckpointError:
    """A write into the run directory that failed (a full disk...), as one line saying what is safe."""
    return CheckpointError(
        f"cannot write {path}: {exc.strerror or exc}; the run's previous files are intact: make room "
        "(or fix the folder) and run the same command again to resume from the last checkpoint"
    )


class RunCheckpoints(pl.Callback):
    """Saves `checkpoints/step-XXXXXXXX.ckpt` every N optimiser steps and at the end.

    Saves happen only right after a completed optimiser step, so a checkpoint
    always holds a consistent state (never the middle of an accumulation); a
    save due on an epoch's last step waits for the end of that epoch, so the
    checkpoint has the epoch's learning-rate decay and resumes into the next
    epoch. A SIGTERM (cluster pre-emption) saves one more at the next step.
    """

    def __init__(self, run_dir: str | Path, every_n_steps: int, keep: int, max_steps: Optional[int] = None) -> None:
        self.run_dir = Path(run_dir)
        self.every_n_steps = every_n_steps
        self.keep = keep
        self.max_steps = max_steps
        self.last_saved_step: Optional[int] = None
        self._at_epoch_end = False

    @property
    def folder(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if not getattr(module, "step_completed", False):
            return
        step = module.step_count
        due = step % self.every_n_steps == 0 or (self.max_steps is not None and step >= self.max_steps)
        sigterm = self._sigterm_everywhere(trainer)  # Lightning stops before the epoch's end then
        if due and module.epoch_complete() and not sigterm:
            self._at_epoch_end = True  # saved once the epoch is closed (schedulers stepped)
        elif due or sigterm:
            self.save(trainer, module)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._at_epoch_end:
            self._at_epoch_end = False
            module.finish_epoch()  # idempotent: the module's own hook then does nothing
            self.save(trainer, module)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # training ended at an epoch boundary (max_epochs): a clean state to save
        if module.step_count > 0 and self.last_saved_step != module.step_count:
            self.save(trainer, module)

    def save(self, trainer: pl.Trainer, module: pl.LightningModule) -> Path:
        step = module.step_count
        path = self.folder / checkpoint_name(step)
        try:
            trainer.save_checkpoint(path, weights_only=False)  # collective: every rank calls it, rank 0 writes
        except OSError as exc:
            raise save_failed(path, exc) from None
        if trainer.is_global_zero:
            export = self.run_dir / EXPORT_NAME
            try:
                export_generator(module, export)
            except OSError as exc:
                raise save_failed(export, exc) from None
            self._prune()
        self.last_saved_step = step
        trainer.strategy.barrier("hifigan-checkpoint")
        return path

    def _prune(self) -> None:
        for _, old in list_checkpoints(self.run_dir)[: -self.keep]:
            old.unlink(missing_ok=True)

    @staticmethod
    def _sigterm_everywhere(trainer: pl.Trainer) -> bool:
        flag = bool(getattr(trainer, "received_sigterm", False))
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            tensor = torch.tensor([1 if flag else 0], device=trainer.strategy.root_device)
            torch.distributed.broadcast(tensor, src=0)
            flag = bool(tensor.item())
        return flag


def export_generator(module: pl.LightningModule, path: str | Path) -> Path:
    """The inference export: generator weights (EMA when on) and the config, written atomically."""
    generator = module.inference_generator
    return save_generator(
        path,
        generator.state_dict(),
        module.config,
        step=int(module.step_count),
        epoch=int(module.current_epoch),
        ema=module.generator_ema is not None,
    )
