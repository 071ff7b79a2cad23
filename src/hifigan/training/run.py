"""`train()`: one call from a recipe and a data folder to a finished, resumable run directory.

RUN_DIR holds
  config.yaml          the resolved config (recipe + overrides) the run uses; on resume
                       the optimiser settings in force (the checkpoint's)
  checkpoints/         step-XXXXXXXX.ckpt every N steps and at the end, newest K kept
  generator.pt         generator-only export for inference (EMA weights when EMA is on)
  logs/                TensorBoard: losses, learning rates, validation mel error,
                       throughput, audio samples and spectrogram images
  validation.jsonl     one line per validation (step, epoch, mel_l1, ...)
  summary.json         the state at the end of the last invocation
  .lock                flock'ed while a process trains here (it holds the PID): a
                       second process on the same RUN_DIR is refused
  previous-<time>/     files set aside, never deleted: the old run (--restart, or a
                       fresh start over an old run's results), the newer checkpoints
                       and export when resuming an older checkpoint, unreadable ones

Every file is written to a temporary name in its folder, fsync'd and renamed
(validation.jsonl: one appended line per write, fsync'd), so a kill loses at
most the steps since the last checkpoint; the temporary files a kill leaves
are removed on the next start. Running the same command again on the same
RUN_DIR resumes from the newest readable checkpoint (an unreadable newer one is
set aside with a warning; when none is readable the run refuses to start and
says so): same step, epoch, optimiser, scheduler and loss-scaler state, EMA,
and the data position as far as the data loader allows.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..config import HiFiGANConfig
from ..files import atomic_write_text
from ..errors import CheckpointError, ConfigError
from .checkpointing import (
    CHECKPOINT_DIR,
    EXPORT_NAME,
    AtomicCheckpointIO,
    RunCheckpoints,
    list_checkpoints,
    read_training_header,
    save_failed,
    scan_checkpoints,
)
from .module import HiFiGANModule
from .precision import set_tf32
from .recipes import load_recipe
from .resume import resumable_datamodule
from .run_dir import (
    ASIDE_PREFIX,
    CONFIG_NAME,
    CURVES_NAME,
    HISTORY_NAME,
    RUN_ENTRIES,
    SUMMARY_NAME,
    AsideFolder,
    RunLock,
    open_run_dir,
    remove_partial_saves,
)

MODEL_SECTIONS = ("audio", "generator", "discriminator")
LIGHTNING_PRECISION = {"32": "32-true", "16-mixed": "16-mixed", "bf16-mixed": "bf16-mixed"}
# restored with the optimiser and scheduler state on resume: the checkpoint's values are in force
OPTIMISER_SETTINGS = ("learning_rate", "lr_decay", "adam_b1", "adam_b2")



@dataclass
class RunOptions:
    """How to run (hardware, data selection, resume); the recipe says what to train."""

    devices: Union[int, str] = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    resume: Union[bool, str, Path, None] = None  # None: resume if RUN_DIR has checkpoints; True: must
    restart: bool = False  # start over at step 0; the old run's files are moved to RUN_DIR/previous-<time>/
    val: Optional[str] = None  # validation list (default: see hifigan.data.load_splits)
    validation_size: Optional[int] = None
    mel_dir: Optional[str] = None  # precomputed (generated) mels: fine-tuning pairs
    max_val_utterances: Optional[int] = None  # validate on the first N utterances only
    max_failure_fraction: Optional[float] = None  # unusable data files tolerated (--max-bad-fraction; 5%)
    final_validation: bool = True  # validate at the end when the last step was not validated
    progress_bar: bool = True
    sanity_val_steps: int = 1


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Optional[Path]
    generator: Optional[Path]
    step: int
    epoch: int
    val_mel_l1: Optional[float]
    skipped_steps: int
    resumed_from: Optional[Path]


@dataclass
class InitialWeights:
    """Weights a run starts from instead of random ones (fine-tuning); ignored when resuming."""

    generator: dict[str, torch.Tensor]
    mpd: Optional[dict[str, torch.Tensor]] = None
    msd: Optional[dict[str, torch.Tensor]] = None
    initial_lr: Optional[float] = None
    source: str = ""
    # {"generator": optimiser state, "discriminator": ..., "scalers": {side: GradScaler state}} to continue
    optimizer_states: Optional[dict] = None


def apply_overrides(config: HiFiGANConfig, overrides: dict[str, Any]) -> HiFiGANConfig:
    """Copy of `config` with `{"training.batch_size": 8, ...}` applied and checked."""
    data = config.to_dict()
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if not key:
            if section == "name":
                data["name"] = value
                continue
            raise ConfigError(f"override {dotted!r}: expected SECTION.KEY (for example training.batch_size)")
        if section not in data or not isinstance(data[section], dict):
            raise ConfigError(f"override {dotted!r}: unknown section {section!r}")
        if key not in data[section]:
            raise ConfigError(
                f"override {dotted!r}: unknown key {key!r}; {section} has {sorted(data[section])}"
            )
        data[section][key] = value
    return HiFiGANConfig.from_dict(data, source="config with overrides")


def model_differences(a: HiFiGANConfig, b: HiFiGANConfig, discriminators: bool = True) -> list[str]:
    """`section.key: x != y` for every model setting (audio, generator, discriminator) that differs.

    `discriminators=False`: only what the generator depends on (its weights alone are reused).
    """
    da, db = a.to_dict(), b.to_dict()
    out = []
    for section in MODEL_SECTIONS if discriminators else ("audio", "generator"):
        for key in da[section]:
            if da[section][key] != db[section].get(key):
                out.append(f"{section}.{key}: {da[section][key]!r} != {db[section].get(key)!r}")
    divisor_a = a.training.discriminator_channel_divisor
    divisor_b = b.training.discriminator_channel_divisor
    if discriminators and divisor_a != divisor_b:
        out.append(f"training.discriminator_channel_divisor: {divisor_a} != {divisor_b}")
    return out


def _is_rank_zero() -> bool:
    return all(int(os.environ.get(name, 0)) == 0 for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def is_global_zero() -> bool:
    """Whether this process is the first of the run (the one that reports)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return _is_rank_zero()


def _write_text_atomic(path: Path, text: str) -> None:
    """A temporary file in the same folder, fsync'd, renamed over `path`; a failure leaves `path` as it was."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise save_failed(path, exc) from None


def _append_line(path: Path, line: str) -> None:
    """One appended line: one write (a kill leaves at most a torn last line), then fsync."""
    data = line.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            while data:  # one write unless the disk fills up mid-line
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise save_failed(path, exc) from None


def check_run_options(options: "RunOptions") -> None:
    """Refuse contradictory or out-of-range run options before anything is touched."""
    if options.restart and options.resume not in (None, False):
        raise ConfigError("--restart starts the run over at step 0; it cannot be combined with --resume")
    fraction = options.max_failure_fraction
    if fraction is not None and not 0.0 <= fraction < 1.0:
        raise ConfigError(f"--max-bad-fraction (max_failure_fraction) must lie in [0, 1), got {fraction}")


def check_devices(accelerator: str, devices: Union[int, str], num_nodes: int) -> None:
    """Refuse, before anything starts, more devices than this node has."""
    if num_nodes < 1:
        raise ConfigError(f"--num-nodes must be at least 1, got {num_nodes}")
    if isinstance(devices, str):
        if devices in ("auto", "-1"):
            return
        try:
            devices = int(devices)
        except ValueError:
            raise ConfigError(f"--devices must be a number or 'auto', got {devices!r}") from None
    if devices < 1:
        raise ConfigError(f"--devices must be at least 1 (or 'auto'), got {devices}")
    wants_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if wants_gpu:
        available = torch.cuda.device_count()
        if available == 0:
            raise ConfigError(f"--accelerator {accelerator}: no CUDA GPU is visible on this machine")
        if devices > available:
            raise ConfigError(
                f"--devices {devices}: only {available} GPU(s) are visible on this node "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
            )
    elif accelerator in ("cpu", "auto"):
        cores = os.cpu_count() or 1
        if devices > cores:
            raise ConfigError(f"--devices {devices} CPU processes, but this machine has {cores} CPU cores")


def per_device_batch(config: HiFiGANConfig, world_size: int) -> int:
    """The authors' batch is the total: batch_size / (processes x accumulation) per micro-batch."""
    t = config.training
    share = world_size * t.accumulate_grad_batches
    if t.batch_size % share:
        raise ConfigError(
            f"training.batch_size {t.batch_size} (the total per optimiser step) cannot be split over "
            f"{world_size} process(es) x {t.accumulate_grad_batches} accumulation step(s); choose a "
            f"batch size divisible by {share}, or other --devices/--accumulate"
        )
    return t.batch_size // share


def resolve_run_config(config: Any, run_dir: Path, resume_from: Optional[Path],
                       overrides: Optional[dict[str, Any]] = None) -> HiFiGANConfig:
    """The recipe (or, when resuming without one, the run's saved config) plus overrides.

    When resuming, the model must be the one in the checkpoint: any difference in
    the audio, generator or discriminator settings is an error naming them.
    """
    saved_path = run_dir / CONFIG_NAME
    if config is None and resume_from is not None and saved_path.exists():
        resolved = HiFiGANConfig.load(saved_path)
    else:
        resolved = load_recipe(config)
    resolved = apply_overrides(resolved, overrides or {})
    if resume_from is not None:
        in_checkpoint, _ = checkpoint_header(resume_from)
        differences = model_differences(in_checkpoint, resolved)
        if differences:
            raise ConfigError(
                f"the config does not fit the checkpoint {resume_from}: " + "; ".join(differences)
                + ". Resume with the run's own config (omit --config) or start a new RUN_DIR"
            )
        kept = keep_optimiser_settings(resolved, in_checkpoint)
        if kept and _is_rank_zero():
            print(f"hifigan train: resuming continues the checkpoint's optimiser and schedule: {'; '.join(kept)}"
                  "; config.yaml records the values in force", flush=True)
    return resolved


def keep_optimiser_settings(resolved: HiFiGANConfig, in_checkpoint: HiFiGANConfig) -> list[str]:
    """Set OPTIMISER_SETTINGS to the checkpoint's (Lightning restores those); `training.x v in force (w given)`."""
    notes = []
    for name in OPTIMISER_SETTINGS:
        saved, given = getattr(in_checkpoint.training, name), getattr(resolved.training, name)
        if saved != given:
            setattr(resolved.training, name, saved)
            notes.append(f"training.{name} {saved!r} is in force ({given!r} given)")
    return notes


def checkpoint_header(path: Path) -> tuple[HiFiGANConfig, dict[str, Any]]:
    """The config and counters of one of our training checkpoints, without reading its tensors."""
    from ..checkpoints.io import config_of
    from .module import STATE_KEY

    data = read_training_header(path)
    return config_of(data, path), dict(data.get(STATE_KEY, {}))


def find_resume_checkpoint(run_dir: Path, options: "RunOptions") -> tuple[Optional[Path], list[tuple[Path, str]]]:
    """The checkpoint to resume from (None: start at step 0), and the unreadable newer ones (with why).

    When the run has checkpoints but none can be read, starting over would bury
    them: that is refused, naming them, unless --restart says so.
    """
    resume = options.resume
    if options.restart:
        return None, []
    if resume not in (None, True, False):
        path = Path(resume)  # an explicit checkpoint file
        if not path.is_file():
            raise CheckpointError(f"--resume {path}: no such checkpoint file")
        checkpoint_header(path)  # readable, or a one-line error before anything moves
        return path, []
    if resume is False:
        if list_checkpoints(run_dir):
            raise ConfigError(
                f"{run_dir} already holds checkpoints; resume it (the default) or use a new --out folder"
            )
        return None, []
    found, unreadable = scan_checkpoints(run_dir)
    if found is None and unreadable:
        listed = "; ".join(f"{path.name} ({why})" for path, why in unreadable)
        raise CheckpointError(
            f"{run_dir / CHECKPOINT_DIR}: no checkpoint can be read: {listed}. Nothing was changed: run again "
            f"with --restart to start over (the old run is moved to {run_dir / ASIDE_PREFIX}<time>/), or "
            "with --resume CHECKPOINT to continue from a good copy"
        )
    if resume is True and found is None:
        raise CheckpointError(f"--resume: {run_dir} has no readable checkpoint in {run_dir / CHECKPOINT_DIR}")
    return found, unreadable


def set_aside_old_run(run_dir: Path, restart: bool) -> None:
    """Before a start at step 0: move an earlier run's files aside (always with --restart;
    otherwise when it left results that starting over would overwrite)."""
    entries = [run_dir / name for name in RUN_ENTRIES if (run_dir / name).exists()]
    if not restart and not any(_holds_results(path) for path in entries):
        return
    aside = AsideFolder(run_dir)
    for path in entries:
        aside.move(path)
    if aside.moved:
        print(f"hifigan train: {'--restart: ' if restart else 'starting over: '}moved the previous run's "
              f"{aside.describe()}", flush=True)


def _holds_results(path: Path) -> bool:
    if path.name == CHECKPOINT_DIR:
        return any(path.iterdir())
    if path.name == HISTORY_NAME:
        return path.stat().st_size > 0
    return path.name in (EXPORT_NAME, SUMMARY_NAME)


def set_aside_newer(run_dir: Path, resume_from: Path, step: int, unreadable: list[tuple[Path, str]]) -> None:
    """Before resuming at `step`: move aside what belongs to later steps (checkpoints, export), so that
    nothing prunes or overwrites it and a plain rerun continues from here; say so."""
    same = resume_from.resolve()
    newer = [path for s, path in list_checkpoints(run_dir) if s >= step and path.resolve() != same]
    export = run_dir / EXPORT_NAME
    exported = _export_step(export) if export.exists() else None
    stale_export = export.exists() and (exported is None or exported > step)
    if not newer and not stale_export:
        return
    aside = AsideFolder(run_dir)
    history = run_dir / HISTORY_NAME
    if any(row.get("step", 0) > step for row in read_history(history, warn=False)):
        aside.copy(history)  # the resumed run keeps the rows up to `step`
    for path in newer + ([export] if stale_export else []):
        aside.move(path)
    if unreadable:
        names = ", ".join(path.name for path, _ in unreadable)
        print(f"hifigan train: warning: cannot read {names} ({unreadable[0][1]}); resuming from the older "
              f"{resume_from.name} instead; moved {aside.describe()}", file=sys.stderr, flush=True)
    else:
        print(f"hifigan train: {resume_from.name} is older than the run's newest files: moved "
              f"{aside.describe()}, so that a plain rerun continues from here", flush=True)


def _export_step(path: Path) -> Optional[int]:
    """The step `generator.pt` was exported at (None: unreadable)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    step = data.get("step") if isinstance(data, dict) else None
    return step if isinstance(step, int) else None


class ValidationHistory(pl.Callback):
    """Appends each validation's row to validation.jsonl (rank 0), one fsync'd line at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        rows = module.validation_history[self.written:]
        self.written = len(module.validation_history)
        if trainer.is_global_zero:
            for row in rows:
                _append_line(self.path, json.dumps(row) + "\n")


class StopAtStep(pl.Callback):
    """Ends training after `max_steps` optimiser steps (Lightning's own max_steps counts each
    optimiser's steps separately under manual optimisation, and skipped steps not at all)."""

    def __init__(self, max_steps: Optional[int]) -> None:
        self.max_steps = max_steps

    def on_train_start(self, trainer, module) -> None:
        if self.max_steps is not None and module.step_count >= self.max_steps:
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.max_steps is not None and module.step_completed and module.step_count >= self.max_steps:
            trainer.should_stop = True


class ProgressBar(TQDMProgressBar):
    """Lightning's bar, with the optimiser step shown as a whole number."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        if "step" in items:
            items["step"] = int(float(items["step"]))
        return items


def build_trainer(config: HiFiGANConfig, run_dir: Path, options: RunOptions,
                  extra_callbacks: Optional[list] = None, logger: Any = True, resume_step: int = 0):
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.plugins.precision import MixedPrecision
    from lightning.pytorch.strategies import DDPStrategy

    t = config.training
    check_devices(options.accelerator, options.devices, options.num_nodes)
    single = options.devices in (1, "1") and options.num_nodes == 1
    checkpoint_io = AtomicCheckpointIO()
    if single:
        strategy: Any = "auto"
        plugins = [checkpoint_io]
    else:
        # the discriminator step leaves the generator without gradients (and the generator
        # step the frozen discriminators): DDP must look for unused parameters
        strategy = DDPStrategy(find_unused_parameters=True, checkpoint_io=checkpoint_io)
        plugins = []
    callbacks = [
        RunCheckpoints(run_dir, t.checkpoint_every_n_steps, t.keep_checkpoints, t.max_steps),
        StopAtStep(t.max_steps),
        *(extra_callbacks or []),
    ]
    if options.progress_bar:
        callbacks.append(ProgressBar())
    if logger is True:
        # on resume, TensorBoard drops what the lost steps after the checkpoint had logged
        purge = {"purge_step": resume_step + 1} if resume_step else {}
        logger = TensorBoardLogger(save_dir=str(run_dir), name="logs", version="", default_hp_metric=False, **purge)
    if SLURMEnvironment.detect() and not TorchElasticEnvironment.detect():  # as Lightning would choose
        # Lightning's SLURM auto-requeue saves from a signal handler, possibly between the
        # discriminator and generator steps; our SIGTERM handling saves at a step boundary instead
        plugins.append(SLURMEnvironment(auto_requeue=False))
    precision: Any = LIGHTNING_PRECISION[t.precision]
    if t.precision == "16-mixed":
        # fp16 with one dynamic loss scaler for both optimisers, saved in checkpoints. Given
        # explicitly: Lightning would otherwise turn 16-mixed into bf16-mixed on a CPU
        plugins.append(MixedPrecision("16-mixed", _amp_device(options.accelerator)))
        precision = None
    try:
        trainer = pl.Trainer(
            accelerator=options.accelerator,
            devices=options.devices,
            num_nodes=options.num_nodes,
            strategy=strategy,
            plugins=plugins,
            precision=precision,
            max_epochs=t.max_epochs if t.max_epochs is not None else -1,
            max_steps=-1,
            val_check_interval=t.val_every_n_steps * t.accumulate_grad_batches,
            check_val_every_n_epoch=None,
            limit_val_batches=options.max_val_utterances,
            num_sanity_val_steps=options.sanity_val_steps,
            log_every_n_steps=t.log_every_n_steps,
            enable_checkpointing=False,
            enable_progress_bar=options.progress_bar,
            enable_model_summary=_is_rank_zero(),
            logger=logger,
            callbacks=callbacks,
            default_root_dir=str(run_dir),
        )
    except MisconfigurationException as exc:
        raise ConfigError(f"cannot set up training: {exc}") from None
    return trainer


def _amp_device(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    if accelerator == "mps" or (accelerator == "auto" and getattr(torch.backends, "mps", None)
                                and torch.backends.mps.is_available()):
        return "mps"
    return "cpu"


def build_datamodule(config: HiFiGANConfig, data: Any, options: RunOptions, batch_size: int, accelerator_is_gpu: bool):
    """`hifigan.data`'s DataModule over the data folder's train/validation split."""
    from .. import data as data_lib

    kwargs: dict[str, Any] = {}
    if options.validation_size is not None:
        kwargs["validation_size"] = options.validation_size
    splits = data_lib.load_splits(data, val=options.val, seed=config.training.seed, **kwargs)
    dm_kwargs: dict[str, Any] = dict(
        mel_dir=options.mel_dir,
        batch_size=batch_size,
        num_workers=config.training.num_workers,
        seed=config.training.seed,
        pin_memory=accelerator_is_gpu,
    )
    if options.max_failure_fraction is not None:
        dm_kwargs["max_failure_fraction"] = options.max_failure_fraction
    return data_lib.HiFiGANDataModule(config, splits, **dm_kwargs)


def train(
    config: Any = None,
    data: Any = None,
    out: Union[str, Path] = "runs/hifigan",
    options: Optional[RunOptions] = None,
    *,
    overrides: Optional[dict[str, Any]] = None,
    datamodule: Any = None,
    init: Optional[InitialWeights] = None,
    init_factory: Optional[Callable[[HiFiGANConfig], InitialWeights]] = None,
    callbacks: Optional[list] = None,
) -> TrainResult:
    """Train (or resume) a HiFi-GAN run in `out` on the audio of `data`.

    `config`: a recipe name, a config file, or a HiFiGANConfig; `overrides`:
    `{"training.batch_size": 32, ...}` on top of it. `datamodule`: any
    LightningDataModule with the batch contract of `hifigan.data` (instead of
    `data`). `init`/`init_factory`: starting weights for fine-tuning, used only
    when the run does not resume. `callbacks`: extra Lightning callbacks.

    The first process (rank 0) locks `out` for the whole call: a second
    process training in the same folder is refused (see run_dir.py).
    """
    options = options or RunOptions()
    check_run_options(options)
    run_dir = open_run_dir(out)
    if not _is_rank_zero():
        return _train(run_dir, config, data, options, overrides, datamodule, init, init_factory, callbacks)
    with RunLock(run_dir):
        removed = remove_partial_saves(run_dir)
        if removed:
            print(f"hifigan train: removed {len(removed)} partial file(s) an interrupted save left: "
                  + ", ".join(str(path.relative_to(run_dir)) for path in removed), flush=True)
        return _train(run_dir, config, data, options, overrides, datamodule, init, init_factory, callbacks)


def _train(run_dir: Path, config: Any, data: Any, options: RunOptions, overrides: Optional[dict[str, Any]],
           datamodule: Any, init: Optional[InitialWeights],
           init_factory: Optional[Callable[[HiFiGANConfig], InitialWeights]], callbacks: Optional[list]) -> TrainResult:
    """`train()` in a run directory rank 0 has locked."""
    resume_from, unreadable = find_resume_checkpoint(run_dir, options)
    resolved = resolve_run_config(config, run_dir, resume_from, overrides)
    t = resolved.training
    resume_step = int(checkpoint_header(resume_from)[1].get("step", 0)) if resume_from else 0
    if _is_rank_zero():  # nothing is moved before the config is known to be good
        if resume_from is None:
            set_aside_old_run(run_dir, options.restart)
        else:
            set_aside_newer(run_dir, resume_from, resume_step, unreadable)
        _write_text_atomic(run_dir / CONFIG_NAME, _yaml(resolved))
        _truncate_history(run_dir / HISTORY_NAME, resume_step if resume_from else None)
    set_tf32(t.tf32)
    pl.seed_everything(t.seed, workers=True, verbose=False)
    _quiet_lightning()

    history = ValidationHistory(run_dir / HISTORY_NAME)
    trainer = build_trainer(resolved, run_dir, options, extra_callbacks=[history, *(callbacks or [])],
                            resume_step=resume_step)
    batch = per_device_batch(resolved, trainer.world_size)
    if datamodule is None:
        if data is None:
            raise ConfigError("no training data: pass a data folder (--data)")
        datamodule = build_datamodule(resolved, data, options, batch, trainer.strategy.root_device.type == "cuda")
    if resume_from is None and init is None and init_factory is not None:
        init = init_factory(resolved)
    module = HiFiGANModule(resolved, initial_lr=init.initial_lr if (init and resume_from is None) else None)
    module.history_path = None  # ValidationHistory writes validation.jsonl (whole, fsync'd lines)
    resumable_datamodule(datamodule, lambda: (module.current_epoch, module.epoch_batches))
    if resume_from is None and init is not None:
        load_initial_weights(module, init)
        module.initial_optimizer_states = init.optimizer_states
    if trainer.is_global_zero:
        if resume_from is not None:
            print(f"hifigan train: resuming {run_dir} from {resume_from}", flush=True)
        print(
            f"hifigan train: {resolved.name}, {trainer.world_size} process(es) x {batch} per micro-batch x "
            f"{t.accumulate_grad_batches} accumulation = batch {t.batch_size}, precision {t.precision}",
            flush=True,
        )
    started = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    except SIGTERMException:
        # pre-emption: RunCheckpoints saved the state at the step boundary; exit as killed by SIGTERM
        if trainer.is_global_zero:
            print(f"hifigan train: SIGTERM at step {module.step_count}: saved {run_dir / 'checkpoints'}; "
                  "run the same command again to resume", file=sys.stderr, flush=True)
        raise SystemExit(128 + signal.SIGTERM) from None
    if trainer.interrupted:
        raise KeyboardInterrupt
    elapsed = time.perf_counter() - started
    if (options.final_validation and module.step_count > 0 and trainer.limit_val_batches != 0
            and (not module.validation_history or module.validation_history[-1]["step"] != module.step_count)):
        trainer.validate(module, datamodule=datamodule, verbose=False)
    checkpoints = list_checkpoints(run_dir)
    result = TrainResult(
        run_dir=run_dir,
        checkpoint=checkpoints[-1][1] if checkpoints else None,
        generator=(run_dir / EXPORT_NAME) if (run_dir / EXPORT_NAME).exists() else None,
        step=module.step_count,
        epoch=module.step_epoch,
        val_mel_l1=module.validation_history[-1]["mel_l1"] if module.validation_history else None,
        skipped_steps=module.skipped_steps,
        resumed_from=resume_from,
    )
    digests = _gather_digests(module)
    if trainer.is_global_zero:
        summary = {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(result).items()},
            "world_size": trainer.world_size,
            "weights_sha256_per_rank": digests,
            "validation": read_history(run_dir / HISTORY_NAME),
            "seconds": elapsed,
            "precision": t.precision,
            "samples_seen": module.samples_seen,
        }
        _write_text_atomic(run_dir / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
        _plot_curves(run_dir)
    return result


def _plot_curves(run_dir: Path) -> None:
    """RUN_DIR/curves.png: losses and validation error so far (a picture is not worth failing a run for)."""
    from ..plotting import plot_training_curves

    try:
        plot_training_curves(run_dir, run_dir / CURVES_NAME)
    except Exception as exc:  # a broken event file or a font problem must not turn a finished run into an error
        warnings.warn(f"could not draw {run_dir / CURVES_NAME}: {type(exc).__name__}: {exc}", stacklevel=2)


def read_history(path: Path, warn: bool = True) -> list[dict[str, Any]]:
    """The rows of validation.jsonl; a line that does not parse (torn by a kill mid-write) is dropped."""
    if not path.exists():
        return []
    rows, torn = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict) and isinstance(row.get("step", 0), int):
            rows.append(row)
        else:
            torn.append(str(number))
    if torn and warn:
        print(f"hifigan train: warning: {path}: dropped unreadable line {', '.join(torn)} (a write cut off "
              "by a kill)", file=sys.stderr, flush=True)
    return rows


def _truncate_history(path: Path, step: Optional[int]) -> None:
    """A new run starts a new history; a resumed one forgets validations after its checkpoint."""
    if not path.exists():
        return
    rows = [] if step is None else [row for row in read_history(path) if row.get("step", 0) <= step]
    _write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def load_initial_weights(module: HiFiGANModule, init: InitialWeights) -> None:
    from ..checkpoints import load_state_checked

    load_state_checked(module.generator, init.generator, f"{init.source} (generator)")
    if module.generator_ema is not None:
        module.generator_ema.load_state_dict(module.generator.state_dict())
    if init.mpd is not None:
        load_state_checked(module.mpd, init.mpd, f"{init.source} (mpd)")
    if init.msd is not None:
        load_state_checked(module.msd, init.msd, f"{init.source} (msd)")


def weights_digest(module: HiFiGANModule) -> str:
    """SHA-256 of every trainable parameter, in name order (equal across DDP ranks)."""
    digest = hashlib.sha256()
    for name, parameter in sorted(module.named_parameters()):
        if name.startswith("generator_ema."):
            continue
        digest.update(name.encode())
        digest.update(parameter.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _gather_digests(module: HiFiGANModule) -> list[str]:
    mine = weights_digest(module)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, mine)
        return [str(p) for p in parts]
    return [mine]


def _yaml(config: HiFiGANConfig) -> str:
    import yaml

    return "# resolved config of this run (recipe + command-line overrides)\n" + yaml.safe_dump(
        config.to_dict(), sort_keys=False
    )


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_lightning() -> None:
    """Hide Lightning hints that do not apply to this training loop."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in logger.filters):
        logger.addFilter(_DropAdverts())
    for pattern in (
        ".*does not have many workers.*",
        ".*The number of training batches.*is smaller than the logging interval.*",
        ".*`isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
