"""The training step itself: accumulation, non-finite steps, EMA, precision helpers, recipes, errors.

These run in-process on tiny synthetic batches that follow the data contract
(`mel`, `audio`, `mel_loss`, `name`), so they are fast and exact.
"""
from __future__ import annotations

import math
import os

import pytest
import torch
from torch.utils.data import DataLoader

from hifigan import load_generator
from hifigan.audio import MelSpectrogram
from hifigan.config import preset, with_generator_channels
from hifigan.data import collate
from hifigan.errors import CheckpointError, ConfigError, HiFiGANError
from hifigan.training import (
    HiFiGANModule,
    NonFiniteLossError,
    RunOptions,
    list_recipes,
    load_recipe,
    per_device_batch,
    recipe_path,
    train,
)
from hifigan.training.checkpointing import AtomicCheckpointIO, list_checkpoints
from hifigan.training.precision import FP32_SCALE_LAYERS, keep_grouped_convs_fp32
from hifigan.training.run import StopAtStep, check_devices



def small_config(accumulate: int = 1, batch: int = 2, **training):
    config = with_generator_channels(preset("v1"), 16)
    t = config.training
    t.segment_size = 2048
    t.batch_size = batch
    t.accumulate_grad_batches = accumulate
    t.discriminator_channel_divisor = 16
    t.learning_rate = 1e-3
    t.num_workers = 0
    for key, value in training.items():
        setattr(t, key, value)
    return config.validate()


def synthetic_items(config, count: int, nan_from: int | None = None):
    """Random clips with their mels; items from `nan_from` on carry NaN audio (and mels)."""
    generator = torch.Generator().manual_seed(0)
    mel = MelSpectrogram.from_config(config.audio)
    loss_mel = MelSpectrogram.from_config(config.audio, for_loss=True)
    items = []
    for i in range(count):
        audio = 0.3 * torch.randn(config.training.segment_size, generator=generator)
        if nan_from is not None and i >= nan_from:
            audio = torch.full_like(audio, float("nan"))
        items.append({"mel": mel(audio)[0], "audio": audio, "mel_loss": loss_mel(audio)[0], "name": f"clip{i}"})
    return items


class ListData:
    """A minimal DataModule over in-memory items (the train() API accepts any)."""

    def __new__(cls, items, per_device: int, val_items=()):
        import lightning.pytorch as pl

        class _DM(pl.LightningDataModule):
            def train_dataloader(self):
                return DataLoader(items, batch_size=per_device, shuffle=False, collate_fn=collate)

            def val_dataloader(self):
                return DataLoader(list(val_items), batch_size=1, collate_fn=collate) if val_items else []

        return _DM()


class GradientRecorder:
    """Records each optimiser's gradients right before its (first) step."""

    def __new__(cls):
        import lightning.pytorch as pl

        class _Recorder(pl.Callback):
            def __init__(self):
                self.grads = {}

            def on_train_start(self, trainer, module):
                names = {id(p): n for n, p in module.named_parameters()}
                for optimizer in trainer.optimizers:
                    def hook(opt, args, kwargs):
                        for group in opt.param_groups:
                            for p in group["params"]:
                                if p.grad is not None and names[id(p)] not in self.grads:
                                    self.grads[names[id(p)]] = p.grad.detach().clone()
                    optimizer.register_step_pre_hook(hook)

        return _Recorder()


def fit(module, items, per_device: int, steps: int, callbacks=()):
    import lightning.pytorch as pl

    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[StopAtStep(steps), *callbacks],
    )
    trainer.fit(module, DataLoader(items, batch_size=per_device, shuffle=False, collate_fn=collate))
    return trainer


def _relative(a: dict, b: dict, prefix: str) -> float:
    keys = sorted(k for k in a if k.startswith(prefix))
    x = torch.cat([a[k].flatten() for k in keys])
    y = torch.cat([b[k].flatten() for k in keys])
    return float((x - y).norm() / x.norm())


def test_accumulation_gives_the_gradients_of_the_large_batch():
    torch.manual_seed(1)
    big = HiFiGANModule(small_config(accumulate=1, batch=2))
    with torch.no_grad():  # converge the spectral-norm power iteration: extra forwards then change nothing
        x = 0.3 * torch.randn(1, 1, 2048)
        for _ in range(60):
            big.msd(x, x)
    start = big.state_dict()
    accumulated = HiFiGANModule(small_config(accumulate=2, batch=2))
    accumulated.load_state_dict(start)
    last_only = HiFiGANModule(small_config(accumulate=1, batch=1))
    last_only.load_state_dict(start)
    items = synthetic_items(big.config, 2)
    recorders = [GradientRecorder() for _ in range(3)]
    fit(big, items, per_device=2, steps=1, callbacks=[recorders[0]])
    fit(accumulated, items, per_device=1, steps=1, callbacks=[recorders[1]])
    fit(last_only, items[1:], per_device=1, steps=1, callbacks=[recorders[2]])
    assert big.step_count == accumulated.step_count == 1
    full, acc, last = (r.grads for r in recorders)
    assert set(full) == set(acc) == {n for n, _ in big.named_parameters()}  # both sides stepped
    for side in ("generator.", "mpd.", "msd."):
        same, wrong = _relative(full, acc, side), _relative(full, last, side)
        print(side, same, wrong)
        assert same < 1e-3, side  # k micro-batches of 1 == one batch of 2
        assert wrong > 10 * same, side  # and the test can tell a wrong average


def test_leftover_micro_batches_of_an_epoch_are_dropped():
    module = HiFiGANModule(small_config(accumulate=2, batch=2, lr_decay=0.5))
    fit(module, synthetic_items(module.config, 3), per_device=1, steps=2)  # 3 batches/epoch: 1 step each
    assert module.step_count == 2
    assert module.current_epoch >= 1
    opt_g, _ = module.optimizers()
    assert math.isclose(opt_g.param_groups[0]["lr"], 1e-3 * 0.5, rel_tol=1e-6)  # one epoch completed


class BatchNames:
    def __new__(cls):
        import lightning.pytorch as pl

        class _Names(pl.Callback):
            def __init__(self):
                self.names = []

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                self.names.append(batch["name"][0])

        return _Names()


def test_resume_continues_mid_epoch_data_and_the_epoch_schedule(tmp_path):
    config = small_config(batch=1, lr_decay=0.5, checkpoint_every_n_steps=100)
    items = synthetic_items(config, 3)  # 3 steps per epoch, in order clip0, clip1, clip2
    options = RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0)

    def run(max_steps):
        names = BatchNames()
        train(config, out=tmp_path, datamodule=ListData(items, 1), options=options,
              overrides={"training.max_steps": max_steps}, callbacks=[names])
        state = torch.load(max(tmp_path.glob("checkpoints/*.ckpt")), weights_only=True)
        return names.names, state

    names, state = run(2)
    assert names == ["clip0", "clip1"] and state["lr_schedulers"][0]["last_epoch"] == 0
    names, state = run(3)  # resumes mid-epoch: the next clip, not the epoch's first
    assert names == ["clip2"]
    assert state["lr_schedulers"][0]["last_epoch"] == 1  # saved at the epoch's end, after its decay
    names, state = run(4)  # resumes into the next epoch, without decaying twice
    assert names == ["clip0"]
    assert state["lr_schedulers"][0]["last_epoch"] == 1
    assert math.isclose(state["optimizer_states"][0]["param_groups"][0]["lr"], 1e-3 * 0.5)
    assert state["hifigan_state"]["step"] == 4


def test_nonfinite_steps_are_skipped_counted_and_stop_the_run(tmp_path):
    config = small_config(batch=1, max_consecutive_nonfinite=2, checkpoint_every_n_steps=1, max_steps=10)
    items = synthetic_items(config, 4, nan_from=1)  # step 1 finite, then NaN losses
    with pytest.raises(NonFiniteLossError, match="2 consecutive steps") as caught:
        train(config, out=tmp_path, datamodule=ListData(items, 1),
              options=RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0))
    assert isinstance(caught.value, HiFiGANError)  # the CLI prints it as one line
    steps = [step for step, _ in list_checkpoints(tmp_path)]
    assert steps == [1, 2]  # step 3 (the second NaN in a row) raised before its checkpoint
    first = torch.load(tmp_path / "checkpoints/step-00000001.ckpt", weights_only=True)
    second = torch.load(tmp_path / "checkpoints/step-00000002.ckpt", weights_only=True)
    assert second["hifigan_state"]["skipped_steps"] == 1
    for key, value in first["state_dict"].items():
        if key.startswith(("generator.", "mpd.", "msd.")) and "_u" not in key and "_v" not in key:
            assert torch.equal(value, second["state_dict"][key]), key  # the skipped step changed nothing


def _after_one_update(state):
    """The (scale, growth tracker) pairs a scaler in `state` can reach in one update."""
    scale, tracker = state
    return {(scale, tracker + 1), (scale / 2, 0)}


def _two_fp16_steps(tmp_path):
    """Two fp16 steps with a checkpoint at step 2: (its contents, one_more_step).

    one_more_step(data) writes `data` as that checkpoint, resumes from it for one step and
    returns step 3's checkpoint.
    """
    config = small_config(batch=1, precision="16-mixed", checkpoint_every_n_steps=2, max_steps=2)
    items = synthetic_items(config, 4)
    options = RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0)
    train(config, out=tmp_path, datamodule=ListData(items, 1), options=options)
    path = tmp_path / "checkpoints" / "step-00000002.ckpt"

    def one_more_step(data):
        torch.save(data, path)
        train(config, out=tmp_path, datamodule=ListData(items, 1), options=options,
              overrides={"training.max_steps": 3})
        return torch.load(tmp_path / "checkpoints" / "step-00000003.ckpt", weights_only=True)

    return torch.load(path, weights_only=True), one_more_step


def test_fp16_has_one_loss_scaler_per_optimiser_saved_and_restored(tmp_path):
    data, one_more_step = _two_fp16_steps(tmp_path)
    scalers = data["hifigan_state"]["loss_scalers"]
    assert set(scalers) == {"generator", "discriminator"}  # NVIDIA's scaler_g and scaler_d
    for side in ("generator", "discriminator"):
        state = (scalers[side]["scale"], scalers[side]["_growth_tracker"])
        # two steps, one update of each scaler per step (not two of one shared scaler)
        assert state in {(2.0**16, 2), (2.0**15, 1), (2.0**15, 0), (2.0**14, 0)}, (side, state)
    assert data["MixedPrecision"] == scalers["generator"]  # Lightning's entry: the generator's
    # recognisable, different states, then one more step: each side continues its own
    scalers["generator"].update(scale=1024.0, _growth_tracker=7)
    scalers["discriminator"].update(scale=4096.0, _growth_tracker=3)
    final = one_more_step(data)
    got = final["hifigan_state"]["loss_scalers"]
    g = (got["generator"]["scale"], got["generator"]["_growth_tracker"])
    d = (got["discriminator"]["scale"], got["discriminator"]["_growth_tracker"])
    assert g in _after_one_update((1024.0, 7)) and d in _after_one_update((4096.0, 3)), (g, d)
    halvings = (g[0] < 1024.0) + (d[0] < 4096.0)
    assert final["hifigan_state"]["overflow_skips"] - data["hifigan_state"]["overflow_skips"] == halvings


def test_fp16_resume_from_a_checkpoint_with_one_shared_scaler(tmp_path):
    data, one_more_step = _two_fp16_steps(tmp_path)
    del data["hifigan_state"]["loss_scalers"]  # as written before there were two
    data["MixedPrecision"].update(scale=1024.0, _growth_tracker=7)
    got = one_more_step(data)["hifigan_state"]
    for side in ("generator", "discriminator"):  # both continue from the shared scaler's state
        state = (got["loss_scalers"][side]["scale"], got["loss_scalers"][side]["_growth_tracker"])
        assert state in _after_one_update((1024.0, 7)), (side, state)


def test_fp32_and_bf16_runs_have_no_loss_scalers():
    module = HiFiGANModule(small_config(batch=1))
    fit(module, synthetic_items(module.config, 1), per_device=1, steps=1)
    assert module.loss_scalers is None  # the authors' recipe (fp32) is untouched


def test_ema_is_saved_used_for_export_and_preferred_by_load_generator(tmp_path):
    config = small_config(batch=1, ema_decay=0.5, checkpoint_every_n_steps=2, max_steps=2)
    module_items = synthetic_items(config, 2)
    result = train(config, out=tmp_path, datamodule=ListData(module_items, 1),
                   options=RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0))
    data = torch.load(result.checkpoint, weights_only=True)
    ema = {k[len("generator_ema."):]: v for k, v in data["state_dict"].items() if k.startswith("generator_ema.")}
    raw = {k[len("generator."):]: v for k, v in data["state_dict"].items() if k.startswith("generator.")}
    assert ema and set(ema) == set(raw)
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # the average lags the weights
    exported = torch.load(result.generator, weights_only=True)
    assert exported["kind"] == "generator" and exported["ema"] is True
    assert all(torch.equal(exported["generator"][k], ema[k]) for k in ema)
    from_training = load_generator(result.checkpoint, fold_weight_norm=False)
    assert all(torch.equal(from_training.state_dict()[k], ema[k]) for k in ema)


def test_grouped_convs_run_in_fp32_under_autocast():
    from hifigan.models import MultiScaleDiscriminator

    msd = MultiScaleDiscriminator(channel_divisor=16)
    assert keep_grouped_convs_fp32(msd) == 3 * len(FP32_SCALE_LAYERS)
    conv = msd.discriminators[1].convs[2]  # a 16-group convolution
    x = torch.randn(1, conv.in_channels, 512).to(torch.bfloat16)
    plain_forward = type(conv).forward
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x)
            in_bf16 = plain_forward(conv, x)
        in_fp32 = plain_forward(conv, x.float())
    assert out.dtype == torch.bfloat16  # the rest of the network keeps its dtype
    assert torch.equal(out, in_fp32.to(torch.bfloat16))  # ...but the convolution ran in fp32
    assert not torch.equal(out, in_bf16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real, fake, _, _ = msd(torch.randn(1, 1, 2048), torch.randn(1, 1, 2048))
    assert all(torch.isfinite(r.float()).all() for r in real + fake)


def test_recipes_ship_with_the_published_values():
    assert {"v1", "v2", "v3", "v1-nvidia"} <= set(list_recipes())
    authors = load_recipe("v1").training
    assert (authors.batch_size, authors.learning_rate, authors.adam_b1, authors.adam_b2, authors.lr_decay,
            authors.segment_size, authors.precision) == (16, 2e-4, 0.8, 0.99, 0.999, 8192, "32")
    nvidia = load_recipe("v1-nvidia").training
    assert (nvidia.batch_size, nvidia.learning_rate, nvidia.lr_decay, nvidia.precision,
            nvidia.fp32_grouped_convs, nvidia.finetune_lr_factor, nvidia.max_epochs) == (
        128, 3e-4, 0.9998, "16-mixed", True, 3.0, 6500)
    assert load_recipe("v3").generator == preset("v3").generator
    assert "train_lj22khz.sh" in recipe_path("v1-nvidia").read_text()
    assert load_recipe("v1").training.discriminator_channel_divisor == 1  # the paper's discriminators


def test_batch_is_split_over_processes_and_accumulation():
    config = load_recipe("v1-nvidia")
    assert per_device_batch(config, 8) == 16
    config.training.accumulate_grad_batches = 8
    assert per_device_batch(config, 1) == 16
    with pytest.raises(ConfigError, match="cannot be split"):
        per_device_batch(load_recipe("v1"), 3)


def test_clear_errors_before_training(tmp_path):
    config = small_config()
    config.training.segment_size = 1000
    with pytest.raises(ConfigError, match="multiple of"):
        config.validate()
    with pytest.raises(ConfigError, match="GPU"):
        check_devices("gpu", 1, 1) if not torch.cuda.is_available() else check_devices("gpu", 10_000, 1)
    with pytest.raises(ConfigError, match="CPU cores"):
        check_devices("cpu", (os.cpu_count() or 1) + 1, 1)
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        train(small_config(), out=tmp_path / "empty", datamodule=ListData([], 1),
              options=RunOptions(accelerator="cpu", resume=True))
    # a data folder without usable audio
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "notes.wav").write_text("not audio")
    with pytest.raises(HiFiGANError, match="audio"):
        train(small_config(max_steps=1), data=folder, out=tmp_path / "run",
              options=RunOptions(accelerator="cpu", progress_bar=False))


def test_resuming_with_another_model_is_refused(tmp_path):
    config = small_config(batch=1, max_steps=1, checkpoint_every_n_steps=1)
    items = synthetic_items(config, 1)
    options = RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0)
    train(config, out=tmp_path, datamodule=ListData(items, 1), options=options)
    other = with_generator_channels(config, 32)
    with pytest.raises(ConfigError, match="does not fit the checkpoint.*upsample_initial_channel"):
        train(other, out=tmp_path, datamodule=ListData(items, 1), options=options)


def test_checkpoint_writes_are_atomic(tmp_path):
    path = tmp_path / "step.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "weights": torch.ones(3)}, path)

    class Explodes:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1000), "bad": Explodes()}, path)
    assert torch.load(path, weights_only=True)["step"] == 1  # the previous file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["step.ckpt"]  # no temporary left behind


def _whole_utterance(config, samples: int, name: str, seed: int = 3):
    audio = 0.3 * torch.randn(samples, generator=torch.Generator().manual_seed(seed))
    mel = MelSpectrogram.from_config(config.audio)
    loss_mel = MelSpectrogram.from_config(config.audio, for_loss=True)
    return {"mel": mel(audio)[0], "audio": audio, "mel_loss": loss_mel(audio)[0], "name": name}


def test_nvidia_validation_metric_is_five_crops_of_each_utterance_times_45():
    import zlib

    import numpy as np

    from hifigan.losses import MEL_WEIGHT

    config = small_config()
    assert not HiFiGANModule(config).nvidia_validation  # the authors' recipe: our metric only
    module = HiFiGANModule(config, nvidia_validation=True).eval()
    segment = config.training.segment_size
    audio = _whole_utterance(config, 5 * segment, "utt")["audio"]
    with torch.no_grad():
        errors = module.nvidia_crop_errors(module.generator, audio, "utt")
        again = module.nvidia_crop_errors(module.generator, audio, "utt")
        assert len(errors) == 5 and errors == again and len(set(errors)) == 5  # 5 different, reproducible crops
        # crop 2 by hand: NVIDIA's rng.integers(0, T - segment), the generator on the crop's own mel
        start = int(np.random.default_rng([2, zlib.crc32(b"utt")]).integers(0, audio.shape[0] - segment))
        crop = audio[start:start + segment][None]
        y_hat = module.generator(MelSpectrogram.from_config(config.audio)(crop))
        expected = MEL_WEIGHT * torch.nn.functional.l1_loss(module.loss_mel(crop), module.loss_mel(y_hat)).item()
        assert errors[2] == pytest.approx(expected, rel=1e-5)  # (batched: float rounding only)
        short = module.nvidia_crop_errors(module.generator, audio[: segment // 2], "short")
    assert len(set(short)) == 1  # shorter than a segment: zero-padded, the same crop five times


def test_nvidia_recipe_runs_log_both_validation_metrics_under_their_names(tmp_path):
    import json

    from hifigan.training.module import NVIDIA_VAL_METRIC

    config = small_config(batch=1, max_steps=1, val_every_n_steps=1, checkpoint_every_n_steps=1)
    config.name = "v1-nvidia"  # a run of NVIDIA's recipe (tiny here)
    items = synthetic_items(config, 1)
    val = [_whole_utterance(config, 2 * config.training.segment_size + 512, "val0")]
    train(config, out=tmp_path, datamodule=ListData(items, 1, val_items=val),
          options=RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0))
    rows = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert rows and all("mel_l1" in row and NVIDIA_VAL_METRIC in row for row in rows)
    row = rows[-1]
    assert NVIDIA_VAL_METRIC == "nvidia_crops_mel_l1_x45"
    assert row[NVIDIA_VAL_METRIC] > 10 * row["mel_l1"]  # x 45 of crops, beside ours (unscaled, whole utterances)
