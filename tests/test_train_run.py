"""A tiny generator trains on real clips of the allison corpus and its validation error falls;
the run directory holds everything the issue lists."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from hifigan import load_generator
from hifigan.training import RunOptions, train



def tiny_corpus(allison_dir: Path, folder: Path, train_count: int = 6, val_count: int = 2) -> Path:
    """A data folder whose train.txt/val.txt list a few real clips (absolute paths)."""
    train_lines = (allison_dir / "train.txt").read_text().split()
    val_lines = (allison_dir / "val.txt").read_text().split()
    picked = [line for line in train_lines if "silence" not in line][::40][:train_count]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(str(allison_dir / p) for p in picked) + "\n")
    (folder / "val.txt").write_text("\n".join(str(allison_dir / p) for p in val_lines[:val_count]) + "\n")
    return folder


def tiny_training(tiny_config, **training):
    config = tiny_config
    t = config.training
    t.discriminator_channel_divisor = 16
    t.batch_size = 2
    t.segment_size = 2048
    t.learning_rate = 2e-3
    t.lr_decay = 0.99
    for key, value in training.items():
        setattr(t, key, value)
    return config.validate()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, allison_dir):
    import hifigan.config as config_module

    config = config_module.with_generator_channels(config_module.preset("v1"), 16)
    config.training.num_workers = 0
    config = tiny_training(config, max_steps=40, val_every_n_steps=8, checkpoint_every_n_steps=8,
                           keep_checkpoints=2, log_every_n_steps=4, val_audio_samples=1)
    root = tmp_path_factory.mktemp("allison-run")
    data = tiny_corpus(allison_dir, root / "data")
    result = train(config, data, root / "run", RunOptions(accelerator="cpu", progress_bar=False))
    return result


def test_validation_mel_error_goes_down(trained):
    history = [json.loads(line) for line in (trained.run_dir / "validation.jsonl").read_text().splitlines()]
    assert [row["step"] for row in history] == [8, 16, 24, 32, 40]
    assert all(row["utterances"] == 2 for row in history)  # whole utterances of the validation list
    errors = [row["mel_l1"] for row in history]
    assert errors[-1] < errors[0] - 0.1, errors
    assert trained.val_mel_l1 == errors[-1]
    assert trained.step == 40 and trained.skipped_steps == 0


def test_run_directory_holds_config_checkpoints_logs_and_export(trained):
    run = trained.run_dir
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["generator"]["upsample_initial_channel"] == 16 and saved["training"]["max_steps"] == 40
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step-00000032.ckpt", "step-00000040.ckpt"]  # every 8 steps, newest 2 kept
    events = list((run / "logs").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = EventAccumulator(str(run / "logs"), size_guidance={"images": 0, "audio": 0, "scalars": 0})
    log.Reload()
    scalars = set(log.Tags()["scalars"])
    assert {"train/g_total", "train/d_total", "train/mel_l1", "lr/generator", "lr/discriminator",
            "val/mel_l1", "throughput/audio_samples_per_s", "throughput/mel_frames_per_s"} <= scalars
    assert [e.step for e in log.Scalars("val/mel_l1")] == [8, 16, 24, 32, 40]
    assert any(tag.startswith("generated/") for tag in log.Tags()["audio"])
    assert any(tag.startswith("spectrogram/") for tag in log.Tags()["images"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 40 and summary["world_size"] == 1
    from hifigan.plotting import CURVE_PANELS, read_training_scalars

    curves = run / "curves.png"  # the loss and validation curves as a picture
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and curves.stat().st_size > 10_000
    assert read_training_scalars(run)["val/mel_l1"][-1][0] == 40
    assert {tag for _, tags in CURVE_PANELS for tag in tags} & set(read_training_scalars(run)) >= {
        "train/g_total", "train/mel_l1", "train/d_total", "val/mel_l1"}


def test_checkpoint_and_export_load_as_generators(trained):
    checkpoint = torch.load(trained.checkpoint, weights_only=True)  # plain data only
    assert checkpoint["format"] == "hifigan" and checkpoint["kind"] == "training"
    assert checkpoint["hifigan_state"]["step"] == 40
    from_checkpoint = load_generator(trained.checkpoint)
    exported = load_generator(trained.generator)
    mel = torch.randn(1, 80, 12)
    with torch.no_grad():
        assert torch.allclose(from_checkpoint(mel), exported(mel), atol=1e-6)
        assert from_checkpoint(mel).shape == (1, 1, 12 * 256)
