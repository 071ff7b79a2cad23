"""Fine-tuning: from our training checkpoint on mels computed here (one frame off on some
clips), and from the authors' g_ layout with fresh discriminators."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hifigan.audio import MelSpectrogram, load_audio
from hifigan.config import preset, with_generator_channels
from hifigan.errors import ConfigError
from hifigan.training import RunOptions, train
from hifigan.training.finetune import _discriminators_beside, finetune, finetune_config, load_source
from test_train_module import ListData, small_config, synthetic_items
from test_train_run import tiny_corpus



@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory) -> Path:
    """One of our training checkpoints: 2 steps on synthetic clips, lr decayed over 2 epochs."""
    config = small_config(batch=1, max_steps=2, checkpoint_every_n_steps=2, lr_decay=0.5)
    out = tmp_path_factory.mktemp("source")
    result = train(config, out=out, datamodule=ListData(synthetic_items(config, 1), 1),
                   options=RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0))
    return result.checkpoint


def write_mels(data: Path, config, mel_dir: Path) -> list[int]:
    """The generator-input mel of every listed clip, as .npy; the first two are one frame off."""
    mel = MelSpectrogram.from_config(config.audio)
    mel_dir.mkdir()
    offsets = []
    for i, line in enumerate((data / "train.txt").read_text().split() + (data / "val.txt").read_text().split()):
        audio = torch.from_numpy(load_audio(line, config.audio.sampling_rate).samples)
        frames = mel(audio)[0].numpy()
        if i == 0:
            frames = np.concatenate([frames, frames[:, -1:]], axis=1)  # one frame too many
        elif i == 1:
            frames = frames[:, :-1]  # one frame too few
        offsets.append(frames.shape[1] - audio.shape[0] // config.audio.hop_length)
        np.save(mel_dir / f"{Path(line).stem}.npy", frames.astype(np.float32))
    return offsets


def test_finetune_from_our_checkpoint_on_generated_mels(tmp_path, allison_dir, source_checkpoint, capsys):
    data = tiny_corpus(allison_dir, tmp_path / "data")
    source = torch.load(source_checkpoint, weights_only=True)
    config = small_config()
    offsets = write_mels(data, config, tmp_path / "mels")
    assert offsets[:2] == [1, -1] and set(offsets[2:]) == {0}

    result = finetune(
        source_checkpoint, data, tmp_path / "ft", RunOptions(accelerator="cpu", progress_bar=False),
        mels=tmp_path / "mels",
        overrides={"training.max_steps": 2, "training.val_every_n_steps": 2, "training.batch_size": 2,
                   "training.finetune_lr_factor": 3.0},
    )
    assert "discriminators loaded" in capsys.readouterr().out
    assert result.step == 2 and result.val_mel_l1 is not None and math.isfinite(result.val_mel_l1)
    state = torch.load(result.checkpoint, weights_only=True)
    # the source's schedule went through 2 epochs of decay 0.5; NVIDIA-style factor 3 on top
    assert source["lr_schedulers"][0]["last_epoch"] == 2
    assert math.isclose(state["hifigan_state"]["initial_lr"], 1e-3 * 0.5**2 * 3.0)
    assert state["hifigan_state"]["step"] == 2  # a new run: its own step count
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["validation"][-1]["utterances"] == 2


def authors_checkpoint(folder: Path, channels: int = 16) -> Path:
    """A g_ file in the authors' layout (weight_g / weight_v) with their config.json beside it."""
    from hifigan.models import Generator

    config = with_generator_channels(preset("v1"), channels)
    state = Generator(config.generator).state_dict()
    legacy = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        legacy[key.replace("parametrizations.weight.original1", "weight_v")] = value
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": legacy}, folder / "g_00000100")
    a, g = config.audio, config.generator
    (folder / "config.json").write_text(json.dumps({
        "resblock": g.resblock, "upsample_rates": g.upsample_rates,
        "upsample_kernel_sizes": g.upsample_kernel_sizes, "upsample_initial_channel": channels,
        "resblock_kernel_sizes": g.resblock_kernel_sizes, "resblock_dilation_sizes": g.resblock_dilation_sizes,
        "segment_size": 8192, "num_mels": a.n_mels, "n_fft": a.n_fft, "hop_size": a.hop_length,
        "win_size": a.win_length, "sampling_rate": a.sampling_rate, "fmin": a.fmin, "fmax": a.fmax,
        "fmax_for_loss": None, "batch_size": 16, "learning_rate": 0.0002, "adam_b1": 0.8, "adam_b2": 0.99,
        "lr_decay": 0.999, "seed": 1234, "num_workers": 4,
    }))
    return folder / "g_00000100"


def test_authors_generator_file_starts_with_fresh_discriminators(tmp_path):
    path = authors_checkpoint(tmp_path / "cp_hifigan")
    found = load_source(path)
    assert not found.has_discriminators and found.epoch == 0
    assert found.config.generator.upsample_initial_channel == 16
    assert any("parametrizations.weight.original0" in k for k in found.generator)  # weight norm kept
    config = finetune_config(found, overrides={"training.discriminator_channel_divisor": 16})
    assert config.training.learning_rate == 2e-4  # the authors' recipe for a V1-shaped model
    with pytest.raises(ConfigError, match="does not fit the checkpoint.*upsample_initial_channel"):
        finetune_config(found, config="v1")
    assert _discriminators_beside(path) is None
    (tmp_path / "cp_hifigan" / "do_00000100").write_bytes(b"")
    assert _discriminators_beside(path) == tmp_path / "cp_hifigan" / "do_00000100"


NVIDIA_GENERATOR = Path(__file__).parent / "fixtures" / "interop" / "nvidia" / "hifigan_gen_checkpoint_10.pt"


def nvidia_checkpoint(folder: Path, epoch: int) -> Path:
    """NVIDIA's generator file (written by their Checkpointer, tests/fixtures/interop/nvidia) at `epoch`."""
    data = torch.load(NVIDIA_GENERATOR, map_location="cpu", weights_only=True)
    data["train_state"] = dict(data["train_state"], epoch=epoch)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"hifigan_gen_checkpoint_{epoch}.pt"
    torch.save(data, path)
    return path


def test_nvidia_checkpoint_continues_nvidias_schedule_and_length(tmp_path):
    from hifigan.training.finetune import NVIDIA_FINETUNE_EPOCHS, finetune_initial_lr

    path = nvidia_checkpoint(tmp_path, 6500)  # NVIDIA's LJ Speech run: EPOCHS=6500
    found = load_source(path)
    assert found.epoch == 6500  # from train_state, not 0
    assert found.recipe == "v1-nvidia" and not found.has_discriminators
    assert found.config.discriminator.scale_pool_padding == 1  # NVIDIA's discriminators
    config = finetune_config(found)
    assert config.name == "v1-nvidia" and config.training.finetune_lr_factor == 3.0
    assert config.training.max_epochs == NVIDIA_FINETUNE_EPOCHS == 3500  # fine_tune.sh: 10000 = 6500 + 3500
    lr = finetune_initial_lr(config, found.epoch)
    assert lr == pytest.approx(3e-4 * 0.9998**6500 * 3) and round(lr, 7) == 2.452e-4  # not 9e-4
    assert finetune_config(found, overrides={"training.max_epochs": 10}).training.max_epochs == 10
    # the recorded file itself (epoch 10)
    assert load_source(NVIDIA_GENERATOR).epoch == 10
    # NVIDIA's discriminator file beside the generator's is picked up
    assert _discriminators_beside(path) is None
    (tmp_path / "hifigan_discrim_checkpoint_6500.pt").write_bytes(b"")
    assert _discriminators_beside(path) == tmp_path / "hifigan_discrim_checkpoint_6500.pt"


def test_finetune_run_from_an_nvidia_checkpoint(tmp_path, allison_dir, capsys):
    data = tiny_corpus(allison_dir, tmp_path / "data", train_count=2, val_count=1)
    path = nvidia_checkpoint(tmp_path / "nv", 6500)
    result = finetune(
        path, data, tmp_path / "ft", RunOptions(accelerator="cpu", progress_bar=False, sanity_val_steps=0),
        overrides={"training.max_steps": 1, "training.batch_size": 1, "training.segment_size": 2048,
                   "training.precision": "32", "training.num_workers": 0, "training.val_every_n_steps": 1,
                   "training.discriminator_channel_divisor": 16},
    )
    printed = capsys.readouterr().out
    assert "schedule epoch 6500, learning rate 0.000245, 3500 epochs" in printed
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["hifigan_state"]["initial_lr"] == pytest.approx(3e-4 * 0.9998**6500 * 3)
    assert state["config"]["training"]["max_epochs"] == 3500
    assert state["config"]["discriminator"]["scale_pool_padding"] == 1


def _optimizer_states_after_steps(config, steps: int) -> dict:
    """What NVIDIA's discriminator file holds as optim_g / optim_d, from a run of `steps` steps."""
    from hifigan.training import HiFiGANModule
    from test_train_module import fit

    module = HiFiGANModule(config)
    trainer = fit(module, synthetic_items(config, 1), per_device=1, steps=steps)
    opt_g, opt_d = (o.optimizer for o in trainer.optimizers) if hasattr(trainer.optimizers[0], "optimizer") \
        else trainer.optimizers
    return {"optim_g": opt_g.state_dict(), "optim_d": opt_d.state_dict(), "scaler_g": {}, "scaler_d": {}}


def test_nvidia_optimizer_states_are_continued_at_the_fine_tuning_rate(capsys):
    """NVIDIA's fine-tuning keeps its checkpoint's Adam moments: so does ours, at the new learning rate."""
    from hifigan.training import HiFiGANModule
    from hifigan.training.finetune import nvidia_optimizer_states
    from test_train_module import fit

    config = small_config(batch=1)
    states = nvidia_optimizer_states(_optimizer_states_after_steps(config, 3))
    assert states is not None and set(states) == {"generator", "discriminator", "scalers"}
    saved_step = float(next(iter(states["generator"]["state"].values()))["step"])

    module = HiFiGANModule(config, initial_lr=2.45e-4)
    module.initial_optimizer_states = states
    trainer = fit(module, synthetic_items(config, 1), per_device=1, steps=1)
    for optimizer in trainer.optimizers:
        optimizer = getattr(optimizer, "optimizer", optimizer)
        first = next(iter(optimizer.state.values()))
        assert float(first["step"]) == saved_step + 1  # continued, not restarted at 1
        assert optimizer.param_groups[0]["initial_lr"] == 2.45e-4

    # a state of another architecture is not forced in: said, and the moments start fresh
    wide = with_generator_channels(preset("v1"), 32)
    wide.training.discriminator_channel_divisor = 16
    wide.training.segment_size = 2048
    other = nvidia_optimizer_states(_optimizer_states_after_steps(wide.validate(), 1))
    module = HiFiGANModule(config)
    module.initial_optimizer_states = other
    capsys.readouterr()
    trainer = fit(module, synthetic_items(config, 1), per_device=1, steps=1)
    assert "generator optimiser state is not used" in capsys.readouterr().out
    opt_g = getattr(trainer.optimizers[0], "optimizer", trainer.optimizers[0])
    assert float(next(iter(opt_g.state.values()))["step"]) == 1
