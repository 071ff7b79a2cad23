"""The HiFi-GAN LightningModule: the authors' training step, with manual optimisation.

Per optimiser step, in the authors' order: generate; discriminator step on the
detached output (zero_grad, D losses, backward, step); generator step (mel L1
with the loss mel of the generated audio, least-squares adversarial and
feature-matching losses through both discriminators, backward, step). The
learning rates decay once per epoch.

Gradient accumulation follows NVIDIA's scheme so that k micro-batches give
exactly the update of one k-times larger batch: the discriminator accumulates
over the k micro-batches and steps; then the generator accumulates over the
same k micro-batches (against the updated discriminator, as in the authors'
order) and steps. Under DDP the gradients are all-reduced once per step.

A step whose loss is NaN/inf on any process is skipped on every process
(the ranks agree, or DDP would hang) and counted; too many in a row stop the
run with `NonFiniteLossError`, leaving the last good checkpoint untouched.

The discriminators are the registry of `hifigan.models` (`DISCRIMINATORS`:
`mpd`, `msd`), each an attribute named as its entry. The authors' order is
kept to the bit: forward passes in registry order (mpd, then msd), the
discriminator optimiser over chain(msd, mpd) and the loss terms summed msd
first (`summation_order`), so that from the same weights and batch a step
gives the authors' losses and updated weights exactly
(tests/test_authors_steps.py).

fp16 (`16-mixed`): one dynamic loss scaler per optimiser, as NVIDIA
(`precision.LossScalers`), both saved in checkpoints and restored on resume.

Validation: our error is the L1 between the loss mels of whole utterances
(`val/mel_l1`, unscaled, as the authors report it). Runs of NVIDIA's recipe
also get NVIDIA's metric beside it: 5 random `segment_size` crops of every
utterance, the mel L1 x 45 (`val/nvidia_crops_mel_l1_x45`).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import time
import zlib
from typing import Any, Optional

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F

from ..audio import MelSpectrogram
from ..checkpoints.io import FORMAT_NAME, FORMAT_VERSION
from ..config import HiFiGANConfig
from ..errors import HiFiGANError
from ..losses import (
    MEL_WEIGHT,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    generator_objective,
    mel_loss,
    ordered_sum,
)
from ..models import DISCRIMINATORS, Generator, MultiScaleDiscriminator, summation_order
from ..models import build_discriminators as build_registered
from .ema import ema_update, frozen_copy
from .precision import LossScalers, keep_grouped_convs_fp32

# AdamW's default weight decay, which the authors' torch.optim.AdamW(...) call uses.
WEIGHT_DECAY = 0.01
STATE_KEY = "hifigan_state"
# recipes whose runs also report NVIDIA's validation metric
NVIDIA_RECIPES = ("v1-nvidia",)
NVIDIA_VAL_REPEATS = 5  # NVIDIA's train.py: val_kwargs=dict(repeat=5, split=True)
NVIDIA_VAL_METRIC = "nvidia_crops_mel_l1_x45"


class NonFiniteLossError(HiFiGANError):
    """The loss stayed NaN/inf for too many steps in a row."""


def build_discriminators(config: HiFiGANConfig) -> tuple[torch.nn.Module, ...]:
    """The registered discriminators a config describes, in registry order (mpd, msd): the paper's
    unless the test-only divisor is set."""
    built = build_registered(config.discriminator, config.training.discriminator_channel_divisor)
    return tuple(built.values())


class HiFiGANModule(pl.LightningModule):
    """Generator + multi-period and multi-scale discriminators, trained as in the paper.

    Attribute names (`generator`, `mpd`, `msd`, `generator_ema`) are part of the
    checkpoint contract: `hifigan.load_generator` reads `generator.*` (or
    `generator_ema.*`) from the `state_dict` of a training checkpoint.
    """

    def __init__(self, config: HiFiGANConfig, initial_lr: Optional[float] = None,
                 nvidia_validation: Optional[bool] = None) -> None:
        super().__init__()
        self.config = config.validate()
        self.automatic_optimization = False
        training = config.training
        self.generator = Generator(config.generator, n_mels=config.audio.n_mels)
        # mpd, msd, ... as attributes named as in the registry (the checkpoint keys mpd.*, msd.*)
        self.discriminator_names = list(DISCRIMINATORS)
        built = build_registered(config.discriminator, training.discriminator_channel_divisor)
        for name, discriminator in built.items():
            setattr(self, name, discriminator)
        if training.fp32_grouped_convs and training.precision != "32":
            for discriminator in built.values():
                if isinstance(discriminator, MultiScaleDiscriminator):
                    keep_grouped_convs_fp32(discriminator)
        self.generator_ema = frozen_copy(self.generator) if training.ema_decay > 0 else None
        self.loss_mel = MelSpectrogram.from_config(config.audio, for_loss=True)
        # NVIDIA's validation metric beside ours (runs of NVIDIA's recipe, unless told)
        self.nvidia_validation = (config.name in NVIDIA_RECIPES) if nvidia_validation is None else nvidia_validation
        self.input_mel = MelSpectrogram.from_config(config.audio) if self.nvidia_validation else None
        self.loss_scalers: Optional[LossScalers] = None  # fp16: one per optimiser (on_fit_start)
        self._loaded_scalers: Optional[dict[str, Any]] = None
        # the learning rate at step 0 (fine-tuning continues a schedule, see finetune.py)
        self.initial_lr = float(initial_lr if initial_lr is not None else training.learning_rate)
        # counters saved in checkpoints
        self.step_count = 0  # optimiser steps attempted (skipped ones included), as the authors' `steps`
        self.skipped_steps = 0
        self.consecutive_nonfinite = 0
        self.overflow_skips = 0  # fp16: optimiser updates the loss scaler skipped (inf gradients)
        self.samples_seen = 0  # training examples, all processes together
        # per-step scratch
        self._group: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._d_bad = False
        self.step_completed = False  # True right after a batch that finished an optimiser step
        self.epoch_batches = 0  # training batches done in the current epoch
        self.step_epoch = 0  # the epoch in which the last optimiser step happened
        self.closed_epoch = -1  # the last epoch whose end stepped the schedulers
        self._close_epoch_on_start: Optional[int] = None
        self._last_losses: dict[str, torch.Tensor] = {}
        self._log_clock: Optional[tuple[float, int]] = None
        self._val_errors: dict[str, float] = {}
        self._val_crop_errors: dict[str, list[float]] = {}
        self._val_metric_rows: dict[str, dict[str, float]] = {}
        self._gt_logged: set[str] = set()
        self.validation_history: list[dict[str, Any]] = []
        self.validations_done = 0
        self.history_path = None  # set by the run: validation.jsonl (rank 0)
        self.initial_optimizer_states: Optional[dict[str, Any]] = None  # fine-tuning: continue a source's

    # ---- optimisers ----------------------------------------------------------------
    def configure_optimizers(self):
        t = self.config.training
        betas = (t.adam_b1, t.adam_b2)
        opt_g = torch.optim.AdamW(self.generator.parameters(), self.initial_lr, betas=betas,
                                  weight_decay=WEIGHT_DECAY)
        # the authors' order: itertools.chain(msd.parameters(), mpd.parameters())
        opt_d = torch.optim.AdamW(itertools.chain(*(d.parameters() for d in self._discriminators_summed())),
                                  self.initial_lr, betas=betas, weight_decay=WEIGHT_DECAY)
        sched_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, gamma=t.lr_decay)
        sched_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, gamma=t.lr_decay)
        return [opt_g, opt_d], [sched_g, sched_d]

    def _continue_optimizers(self, states: dict[str, Any]) -> None:
        """Fine-tuning: the source's Adam moments (and fp16 scalers), at this run's learning rate.

        A state whose parameters do not match ours in number and shape (another
        architecture or discriminator layout) is not loaded: the run says so and
        starts those moments fresh.
        """
        for optimizer, side in zip(self.optimizers(), ("generator", "discriminator")):
            optimizer = getattr(optimizer, "optimizer", optimizer)  # Lightning's wrapper
            reason = _state_mismatch(optimizer, states.get(side))
            if reason:
                print(f"hifigan finetune: the source's {side} optimiser state is not used ({reason})", flush=True)
                continue
            optimizer.load_state_dict(states[side])
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] = self.initial_lr
        if self.loss_scalers is not None and states.get("scalers"):
            self.loss_scalers.load_state_dict(states["scalers"])
            self.loss_scalers.use("generator")

    @property
    def inference_generator(self) -> Generator:
        """The weights used for validation and export: the EMA when it is on."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    # ---- discriminators ----------------------------------------------------------------
    def discriminator_items(self) -> list[tuple[str, torch.nn.Module]]:
        """(name, module) of every discriminator, in registry order (the order of the forward passes)."""
        return [(name, getattr(self, name)) for name in self.discriminator_names]

    def _discriminators_summed(self) -> list[torch.nn.Module]:
        return [getattr(self, name) for name in summation_order(self.discriminator_names)]

    # ---- losses --------------------------------------------------------------------
    def discriminator_losses(self, y: torch.Tensor, y_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = {}
        for name, discriminator in self.discriminator_items():
            real, fake, _, _ = discriminator(y, y_hat)
            losses[f"d_{name}"] = discriminator_loss(real, fake)[0]
        # the authors' loss_disc_s + loss_disc_f
        total = ordered_sum(losses[f"d_{name}"] for name in summation_order(self.discriminator_names))
        return {"d_total": total, **losses}

    def generator_losses(self, y: torch.Tensor, y_hat: torch.Tensor, y_mel: torch.Tensor) -> dict[str, torch.Tensor]:
        mel_l1 = mel_loss(y_mel, self.loss_mel(y_hat))
        adv, fm = {}, {}
        for name, discriminator in self.discriminator_items():
            _, fake, fmap_r, fmap_g = discriminator(y, y_hat)
            adv[name] = generator_adversarial_loss(fake)[0]
            fm[name] = feature_matching_loss(fmap_r, fmap_g)
        order = summation_order(self.discriminator_names)
        # the authors' loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel, term by term
        total = generator_objective([adv[n] for n in order], [fm[n] for n in order], mel_l1)
        return {"g_total": total, "g_adv": ordered_sum(adv[n] for n in order),
                "g_fm": ordered_sum(fm[n] for n in order), "mel_l1": mel_l1}

    # ---- the training step -----------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.step_completed = False
        self.epoch_batches = batch_idx + 1  # the data position saved in checkpoints (resume.py)
        k = self.config.training.accumulate_grad_batches
        micro = batch_idx % k
        total = self.trainer.num_training_batches
        if math.isfinite(total) and batch_idx - micro + k > total:
            return  # the epoch's last micro-batches do not fill a step: dropped, as NVIDIA does
        opt_g, opt_d = self.optimizers()
        x, y, y_mel = batch["mel"], batch["audio"], batch["mel_loss"]
        last = micro == k - 1
        if micro == 0:
            self._group = []
            self._d_bad = False
            opt_d.zero_grad(set_to_none=True)
        self._group.append((x, y, y_mel))

        # generate (kept in the graph only for the micro-batch whose generator pass is reused)
        with torch.set_grad_enabled(last):
            y_hat = self.generator(x)

        # discriminator, on the detached output
        d_losses = self.discriminator_losses(y, y_hat.detach())
        self._use_scaler("discriminator")
        if self._all_finite(d_losses["d_total"]):
            with self._sync_gradients(last):
                self.manual_backward(d_losses["d_total"] / k)
        else:
            self._d_bad = True
        if not last:
            return
        if self._d_bad:
            opt_d.zero_grad(set_to_none=True)
        else:
            self._scaled_step(opt_d)

        # generator, against the updated discriminators
        self._set_discriminators_trainable(False)
        self._use_scaler("generator")
        opt_g.zero_grad(set_to_none=True)
        g_bad = False
        try:
            for i, (x_i, y_i, y_mel_i) in enumerate(reversed(self._group)):
                y_hat_i = y_hat if i == 0 else self.generator(x_i)
                g_losses = self.generator_losses(y_i, y_hat_i, y_mel_i)
                if self._all_finite(g_losses["g_total"]):
                    with self._sync_gradients(i == k - 1):
                        self.manual_backward(g_losses["g_total"] / k)
                else:
                    g_bad = True
                    break
        finally:
            self._set_discriminators_trainable(True)
        if g_bad:
            opt_g.zero_grad(set_to_none=True)
        else:
            self._scaled_step(opt_g)
            if self.generator_ema is not None:
                ema_update(self.generator_ema, self.generator, self.config.training.ema_decay)
        self._group = []
        self._finish_step(skipped=self._d_bad or g_bad, losses={**d_losses, **g_losses})

    def _use_scaler(self, side: str) -> None:
        """fp16: the next backward and optimizer step use `side`'s own loss scaler."""
        if self.loss_scalers is not None:
            self.loss_scalers.use(side)

    def _scaled_step(self, optimizer) -> None:
        """optimizer.step() through Lightning's precision plugin; with fp16 the plugin's scaler is the
        stepping optimiser's own (`_use_scaler`), and an update it skips (inf/NaN gradients) lowers its scale."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        before = scaler.get_scale() if scaler is not None and scaler.is_enabled() else None
        optimizer.step()
        if before is not None and scaler.get_scale() < before:
            self.overflow_skips += 1

    def _finish_step(self, skipped: bool, losses: dict[str, torch.Tensor]) -> None:
        self.step_count += 1
        self.step_epoch = self.current_epoch
        self.samples_seen += self.config.training.batch_size
        self.step_completed = True
        if skipped:
            self.skipped_steps += 1
            self.consecutive_nonfinite += 1
            limit = self.config.training.max_consecutive_nonfinite
            if self.consecutive_nonfinite >= limit:
                raise NonFiniteLossError(
                    f"the loss was NaN or infinite in {self.consecutive_nonfinite} consecutive steps "
                    f"(up to step {self.step_count}, {self.skipped_steps} skipped in all); training stopped "
                    "and the last checkpoint was kept. Try --precision bf16-mixed or 32, a lower learning "
                    "rate, or check the data"
                )
        else:
            self.consecutive_nonfinite = 0
        self._last_losses = {name: value.detach() for name, value in losses.items()}
        self.log("step", float(self.step_count), prog_bar=True, logger=False, on_step=True)
        if not skipped:
            self.log("g", losses["g_total"].detach(), prog_bar=True, logger=False, on_step=True)
            self.log("mel", losses["mel_l1"].detach(), prog_bar=True, logger=False, on_step=True)
        if self.step_count % self.config.training.log_every_n_steps == 0:
            self._log_training_scalars()

    def _log_training_scalars(self) -> None:
        now = time.perf_counter()
        metrics = {f"train/{name}": float(value) for name, value in self._last_losses.items()}
        opt_g, opt_d = self.optimizers()
        metrics["lr/generator"] = opt_g.param_groups[0]["lr"]
        metrics["lr/discriminator"] = opt_d.param_groups[0]["lr"]
        metrics["train/skipped_steps"] = float(self.skipped_steps)
        metrics["train/fp16_overflow_skips"] = float(self.overflow_skips)
        metrics["train/epoch"] = float(self.current_epoch)
        if self._log_clock is not None:
            then, samples = self._log_clock
            if now > then:
                rate = (self.samples_seen - samples) / (now - then)  # training segments per second
                segment = self.config.training.segment_size
                metrics["throughput/segments_per_s"] = rate
                metrics["throughput/audio_samples_per_s"] = rate * segment
                metrics["throughput/mel_frames_per_s"] = rate * segment / self.config.audio.hop_length
                metrics["throughput/audio_seconds_per_s"] = rate * segment / self.config.audio.sampling_rate
                self.log("seg/s", rate, prog_bar=True, logger=False, on_step=True)
        self._log_clock = (now, self.samples_seen)
        if self.logger is not None:
            self.logger.log_metrics(metrics, step=self.step_count)

    def on_train_epoch_start(self) -> None:
        self._group = []
        self.epoch_batches = 0

    def on_fit_start(self) -> None:
        # fp16: a second loss scaler, so each optimiser has its own (before Lightning restores the
        # plugin's state from a checkpoint into the generator's)
        if self.loss_scalers is None:
            self.loss_scalers = LossScalers.attach(self.trainer.precision_plugin)
        if self.loss_scalers is not None:
            self.loss_scalers.use("generator")

    def on_train_start(self) -> None:
        if self.loss_scalers is not None:
            if self._loaded_scalers:
                self.loss_scalers.load_state_dict(self._loaded_scalers)
            else:  # a fresh run, or a checkpoint from before there were two: both from the plugin's state
                self.loss_scalers.share_generator_state()
            self._loaded_scalers = None
            self.loss_scalers.use("generator")
        if self.initial_optimizer_states is not None:
            self._continue_optimizers(self.initial_optimizer_states)
            self.initial_optimizer_states = None
        # resumed from a checkpoint saved after the last batch of an epoch, before its end: close
        # that epoch now if Lightning does not (closing is idempotent per epoch)
        if self._close_epoch_on_start is not None:
            self._close_epoch(self._close_epoch_on_start)
            self._close_epoch_on_start = None
        if self._log_clock is None:
            self._log_clock = (time.perf_counter(), self.samples_seen)

    def on_train_epoch_end(self) -> None:
        # the authors step both schedulers once per epoch; a run stopped mid-epoch (max_steps,
        # pre-emption) has not finished it: the resumed run steps them when it does
        self.finish_epoch()

    def epoch_complete(self) -> bool:
        """Whether every batch of the current epoch has been trained on."""
        total = self.trainer.num_training_batches
        if math.isfinite(total):
            return self.epoch_batches >= total
        return not self.trainer.should_stop  # an iterable dataset ended by exhaustion

    def finish_epoch(self) -> None:
        """Step the schedulers for the current epoch if it is complete (once per epoch)."""
        if self.epoch_complete():
            self._close_epoch(self.current_epoch)

    def _close_epoch(self, epoch: int) -> None:
        if epoch <= self.closed_epoch:
            return
        for scheduler in self.lr_schedulers():
            scheduler.step()
        self.closed_epoch = epoch

    # ---- DDP helpers -----------------------------------------------------------------
    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every process (all must agree to skip a step)."""
        flag = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def _sync_gradients(self, sync: bool):
        """DDP all-reduces gradients only on the last micro-batch of a step."""
        wrapper = self.trainer.strategy.model if self._trainer is not None else None
        if not sync and wrapper is not None and hasattr(wrapper, "no_sync"):
            return wrapper.no_sync()
        return contextlib.nullcontext()

    def _set_discriminators_trainable(self, trainable: bool) -> None:
        # the generator step needs no discriminator weight gradients (as NVIDIA's freeze())
        for _, discriminator in self.discriminator_items():
            for parameter in discriminator.parameters():
                parameter.requires_grad_(trainable)

    # ---- validation --------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_errors = {}
        self._val_crop_errors = {}
        self._val_metric_rows = {}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Whole utterances; the authors' error: L1 between the loss mels of target and output."""
        generator = self.inference_generator
        x, y, y_mel = batch["mel"], batch["audio"], batch["mel_loss"]
        names = batch.get("name") or [f"clip{batch_idx}"]
        y_hat = generator(x).float()
        mel_hat = self.loss_mel(y_hat)
        frames = min(mel_hat.shape[-1], y_mel.shape[-1])
        for i in range(y_hat.shape[0]):
            error = F.l1_loss(mel_hat[i, :, :frames], y_mel[i, :, :frames].float()).item()
            self._val_errors[str(names[i])] = error
        if self.trainer.sanity_checking:
            return
        if self.nvidia_validation:
            for i in range(y.shape[0]):
                self._val_crop_errors[str(names[i])] = self.nvidia_crop_errors(generator, y[i], str(names[i]))
        if self._metrics_due():
            self._collect_metrics(names, y, y_hat)
        if self.global_rank == 0 and batch_idx < self.config.training.val_audio_samples:
            self._log_sample(batch_idx, y[0], y_hat[0], y_mel[0], mel_hat[0])

    def on_validation_epoch_end(self) -> None:
        errors = self._gather(self._val_errors)
        if not errors or self.trainer.sanity_checking:
            return
        value = float(np.mean(list(errors.values())))
        row: dict[str, Any] = {"step": self.step_count, "epoch": self.current_epoch,
                               "mel_l1": value, "utterances": len(errors), "time": time.time()}
        crops = self._gather(self._val_crop_errors) if self.nvidia_validation else {}
        if crops:
            row[NVIDIA_VAL_METRIC] = float(np.mean([e for name in sorted(crops) for e in crops[name]]))
        metric_rows = self._gather(self._val_metric_rows)
        if metric_rows:
            for key in sorted({k for r in metric_rows.values() for k in r}):
                values = [r[key] for r in metric_rows.values() if key in r and math.isfinite(r[key])]
                if values:
                    row[key] = float(np.mean(values))
        self.validations_done += 1
        self.validation_history.append(row)
        if self.history_path is not None and self.global_rank == 0:
            with open(self.history_path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
        self.log("val_mel", value, prog_bar=True, logger=False, sync_dist=True)
        if self.logger is not None:
            scalars = {"val/mel_l1": value}
            if NVIDIA_VAL_METRIC in row:
                scalars[f"val/{NVIDIA_VAL_METRIC}"] = row[NVIDIA_VAL_METRIC]
            scalars.update({f"val/{k}": v for k, v in row.items() if k in ("pesq", "stoi")})
            self.logger.log_metrics(scalars, step=self.step_count)

    @torch.no_grad()
    def nvidia_crop_errors(self, generator: Generator, audio: torch.Tensor, name: str) -> list[float]:
        """NVIDIA's validation error of one utterance: `NVIDIA_VAL_REPEATS` random crops of
        `segment_size` samples (zero-padded when shorter), the generator run on each crop's own mel,
        and the mel L1 of each crop x 45 (their `F.l1_loss(y_mel, y_g_hat_mel) * 45`).

        As their MelDataset(repeat=5, split=True, deterministic=True), a crop starts at
        `default_rng(seed).integers(0, T - segment)`; their seed is the item's index in the 5x
        repeated list, ours (repeat, CRC-32 of the utterance name), so crops do not depend on the
        order of the list or the number of processes. They average per batch (16 crops); a mean
        over all crops is the same when every batch is full.
        """
        assert self.input_mel is not None
        segment = self.config.training.segment_size
        audio = audio.reshape(-1).float()
        crops = []
        for repeat in range(NVIDIA_VAL_REPEATS):
            if audio.shape[0] > segment:
                rng = np.random.default_rng([repeat, zlib.crc32(name.encode())])
                start = int(rng.integers(0, audio.shape[0] - segment))
                crops.append(audio[start:start + segment])
            else:
                crops.append(F.pad(audio, (0, segment - audio.shape[0])))
        batch = torch.stack(crops)
        y_hat = generator(self.input_mel(batch)).float()
        target, output = self.loss_mel(batch), self.loss_mel(y_hat)
        return [MEL_WEIGHT * F.l1_loss(target[i], output[i]).item() for i in range(batch.shape[0])]

    def _gather(self, local: dict[str, Any]) -> dict[str, Any]:
        """Merge per-process results by utterance name (the DDP sampler's padding repeats some)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return dict(local)
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, local)
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(part or {})
        return merged

    def _metrics_due(self) -> bool:
        every = self.config.training.metrics_every_n_val
        return every > 0 and self.validations_done % every == 0

    def _collect_metrics(self, names: list[str], y: torch.Tensor, y_hat: torch.Tensor) -> None:
        rate = self.config.audio.sampling_rate
        for i, name in enumerate(names):
            reference = y[i].reshape(-1).float().cpu().numpy()
            estimate = y_hat[i].reshape(-1).float().cpu().numpy()
            self._val_metric_rows[str(name)] = quality_scores(reference, estimate, rate)

    def _log_sample(self, index: int, y: torch.Tensor, y_hat: torch.Tensor, y_mel: torch.Tensor,
                    mel_hat: torch.Tensor) -> None:
        writer = getattr(self.logger, "experiment", None)
        if writer is None or not hasattr(writer, "add_audio"):
            return
        from ..plotting import spectrogram_figure

        rate = self.config.audio.sampling_rate
        tag = f"clip{index}"
        if tag not in self._gt_logged:
            writer.add_audio(f"target/{tag}", y.reshape(1, -1).float().cpu().clamp(-1, 1), 0, rate)
            self._gt_logged.add(tag)
        writer.add_audio(f"generated/{tag}", y_hat.reshape(1, -1).float().cpu().clamp(-1, 1),
                         self.step_count, rate)
        figure = spectrogram_figure(
            [y_mel, mel_hat], ["target (loss mel)", f"generated, step {self.step_count}"],
            difference=(1, 0), frame_seconds=self.config.audio.frame_ms / 1000.0,
        )
        writer.add_figure(f"spectrogram/{tag}", figure, self.step_count, close=True)

    # ---- checkpoint contents --------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["format"] = FORMAT_NAME
        checkpoint["version"] = FORMAT_VERSION
        checkpoint["kind"] = "training"
        checkpoint["config"] = self.config.to_dict()
        checkpoint[STATE_KEY] = {
            "step": self.step_count,
            "epoch": self.current_epoch,
            "skipped_steps": self.skipped_steps,
            "overflow_skips": self.overflow_skips,
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "samples_seen": self.samples_seen,
            "initial_lr": self.initial_lr,
            "validations_done": self.validations_done,
            "epoch_batches": self.epoch_batches,
            "epoch_total": int(total) if math.isfinite(total := self.trainer.num_training_batches) else -1,
            "closed_epoch": self.closed_epoch,
        }
        if self.loss_scalers is not None:
            checkpoint[STATE_KEY]["loss_scalers"] = self.loss_scalers.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(STATE_KEY, {})
        self.step_count = int(state.get("step", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.overflow_skips = int(state.get("overflow_skips", 0))
        self.consecutive_nonfinite = int(state.get("consecutive_nonfinite", 0))
        self.samples_seen = int(state.get("samples_seen", 0))
        self.initial_lr = float(state.get("initial_lr", self.initial_lr))
        self.validations_done = int(state.get("validations_done", 0))
        self.step_epoch = int(state.get("epoch", 0))
        total = int(state.get("epoch_total", -1))
        self.epoch_batches = int(state.get("epoch_batches", 0))
        self.closed_epoch = int(state.get("closed_epoch", self.step_epoch - 1))
        self._loaded_scalers = state.get("loss_scalers")  # applied in on_train_start
        finished = total > 0 and self.epoch_batches >= total
        self._close_epoch_on_start = self.step_epoch if finished else None
        if finished:  # Lightning may call on_train_epoch_end once more before the next epoch: not complete
            self.epoch_batches = 0
        # fresh, reproducible random streams for the rest of the run (random crops etc.),
        # different from the ones the run started with
        seed = (self.config.training.seed * 1_000_003 + self.step_count * 101 + self.global_rank) % (2**31)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)


def quality_scores(reference: np.ndarray, estimate: np.ndarray, rate: int) -> dict[str, float]:
    """Wide-band PESQ and STOI of one validation clip (`hifigan.evaluation.metrics`)."""
    from ..evaluation.metrics import MetricSkipped, pesq_wb, stoi

    scores: dict[str, float] = {}
    for name, function in (("pesq", pesq_wb), ("stoi", stoi)):
        try:
            scores[name] = float(function(reference, estimate, rate))
        except MetricSkipped:  # a clip the metric cannot score (too short, silent) is left out
            continue
    return scores


def _state_mismatch(optimizer: torch.optim.Optimizer, state: Optional[dict[str, Any]]) -> Optional[str]:
    """Why `state` cannot be loaded into `optimizer` (None when it can)."""
    if not isinstance(state, dict) or "param_groups" not in state or "state" not in state:
        return "not an optimiser state"
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for group in state["param_groups"] for i in group.get("params", [])]
    if len(ids) != len(params) or len(state["param_groups"]) != len(optimizer.param_groups):
        return f"{len(ids)} parameters in the file, {len(params)} here"
    for index, param in zip(ids, params):
        moments = state["state"].get(index, {})
        for name in ("exp_avg", "exp_avg_sq"):
            value = moments.get(name)
            if value is not None and tuple(value.shape) != tuple(param.shape):
                return f"parameter {index}: {name} {tuple(value.shape)} vs {tuple(param.shape)}"
    return None

