"""HiFiGANDataModule: the report, batches, bad files across workers, seeded and distributed sampling."""
from __future__ import annotations

import types
import warnings

import pytest
import torch

from hifigan.data import HiFiGANDataModule, SkippedFileWarning, load_splits
from hifigan.data.lists import DataSplits
from hifigan.errors import DataError
from test_data_helpers import make_bad_files, tone, write

RATE = 22050



def good_files(folder, count, rate=RATE, seconds=0.4):
    return [write(folder / f"g{i:02d}.wav", tone(seconds, rate, seed=i), rate) for i in range(count)]


def test_allison_batches_and_resampling_report(allison_dir, tiny_config):
    dm = HiFiGANDataModule(tiny_config, load_splits(allison_dir), batch_size=3, num_workers=0)
    dm.setup("fit")
    report = dm.report
    assert (report.train_files, report.val_files) == (543, 25)
    assert report.resampled == {16000: 568}
    assert "568 of 568 files are resampled to 22050 Hz on load (soxr HQ): 568 at 16000 Hz" in "\n".join(
        report.messages()
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["mel"].shape == (3, 80, 16) and batch["mel_loss"].shape == (3, 80, 16)
    assert batch["audio"].shape == (3, 1, 4096) and len(batch["name"]) == 3
    assert "skipped" not in batch
    val = next(iter(dm.val_dataloader()))
    frames = val["mel"].shape[-1]
    assert val["audio"].shape == (1, 1, frames * 256) and frames > 100


def test_mixed_rates_and_channels_are_said_once(tmp_path, tiny_config):
    files = good_files(tmp_path, 3) + good_files(tmp_path / "k16", 2, rate=16000)
    files.append(write(tmp_path / "st.flac", tone(0.4, 44100, channels=2), 44100))
    dm = HiFiGANDataModule(tiny_config, DataSplits(train=files, val=[]), batch_size=2, num_workers=0)
    dm.setup()
    text = "\n".join(dm.report.messages())
    assert "3 of 6 files are resampled to 22050 Hz on load (soxr HQ): 2 at 16000 Hz, 1 at 44100 Hz" in text
    assert "multi-channel files are averaged to mono: 1 with 2 channels" in text
    assert dm.val_dataloader() == []


def test_bad_files_are_skipped_with_a_warning_each(tmp_path, tiny_config):
    bad = make_bad_files(tmp_path / "bad")
    files = good_files(tmp_path, 14) + [bad[k] for k in ("empty", "truncated", "text", "nan", "one_sample", "silent")]
    dm = HiFiGANDataModule(
        tiny_config, DataSplits(train=files, val=[]), batch_size=4, num_workers=2, max_failure_fraction=0.5
    )
    with pytest.warns(SkippedFileWarning) as caught:
        dm.setup()
        names = []
        for epoch in range(2):
            loader = dm.train_dataloader()
            loader.sampler.set_epoch(epoch)
            for batch in loader:
                assert batch["audio"].shape == (4, 1, 4096)
                names += batch["name"]
    messages = [str(w.message) for w in caught if w.category is SkippedFileWarning]
    for key in ("empty", "truncated", "text", "one_sample"):  # found in the headers, before training
        assert any(str(bad[key]) in m for m in messages), key
    nan_warnings = [m for m in messages if str(bad["nan"]) in m]
    assert len(nan_warnings) == 1 and "NaN" in nan_warnings[0]  # once, from the workers' batches
    assert "files skipped so far" in nan_warnings[0]
    assert "silent" in names and "nan" not in names  # silent audio is usable
    assert set(dm.train_failures.failed) == {str(bad[k]) for k in ("empty", "truncated", "text", "nan", "one_sample")}


def test_too_many_failures_stop_training_with_a_clear_error(tmp_path, tiny_config):
    files = good_files(tmp_path, 12)
    for i in range(3):
        nan = tone(0.4, RATE, seed=i)
        nan[50] = float("nan")
        files.append(write(tmp_path / f"nan{i}.wav", nan, RATE, subtype="FLOAT"))
    dm = HiFiGANDataModule(tiny_config, DataSplits(train=files, val=[]), batch_size=2, num_workers=2,
                           min_attempts=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        with pytest.raises(DataError, match=r"could not be loaded: \d+ of \d+ loaded in training .*more than "
                                            r"max_failure_fraction 5%; --max-bad-fraction raises it.*nan\d.wav: .*NaN"):
            for _ in range(3):
                for _batch in dm.train_dataloader():
                    pass


def test_files_left_out_by_the_header_scan_are_not_counted_again_in_training(tmp_path, tiny_config):
    """3 unusable files in 63 (4.8%) pass the check at setup; the loads must not count them again."""
    bad = make_bad_files(tmp_path / "bad")
    files = good_files(tmp_path, 60, seconds=0.2) + [bad[k] for k in ("empty", "truncated", "text")]
    dm = HiFiGANDataModule(tiny_config, DataSplits(train=files, val=[]), batch_size=4, num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        names = [name for batch in dm.train_dataloader() for name in batch["name"]]
    assert len(names) == 60


def test_unusable_corpus_fails_before_training(tmp_path, tiny_config):
    bad = make_bad_files(tmp_path)
    splits = DataSplits(train=[bad["empty"], bad["text"], bad["truncated"]], val=[])
    dm = HiFiGANDataModule(tiny_config, splits, num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        with pytest.raises(DataError, match="no usable training audio: all 3 training files are unusable"):
            dm.setup()
    files = good_files(tmp_path, 10) + [bad["empty"], bad["text"]]
    dm = HiFiGANDataModule(tiny_config, DataSplits(train=files, val=[]), num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        with pytest.raises(DataError, match=r"training files could not be loaded: 2 of 12 by the header scan"):
            dm.setup()
    dm = HiFiGANDataModule(tiny_config, DataSplits(train=good_files(tmp_path, 3), val=[]), batch_size=4,
                           num_workers=0)
    with pytest.raises(DataError, match="fewer than one batch of 4"):
        dm.train_dataloader()


def test_shuffling_is_seeded_and_changes_every_epoch(tmp_path, tiny_config):
    splits = DataSplits(train=good_files(tmp_path, 12, seconds=0.1), val=[])

    def order(seed, epoch, world=1, rank=0):
        dm = HiFiGANDataModule(tiny_config, splits, batch_size=2, num_workers=0, seed=seed)
        if world > 1:
            dm.trainer = types.SimpleNamespace(world_size=world, global_rank=rank)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        keys = list(loader.sampler)
        assert all(key_epoch == epoch for key_epoch, _ in keys)
        return [index for _, index in keys]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)
    assert sorted(order(1, 0)) == list(range(12))
    rank0, rank1 = order(1, 0, world=2, rank=0), order(1, 0, world=2, rank=1)
    assert len(rank0) == len(rank1) == 6 and sorted(rank0 + rank1) == list(range(12))


def test_crops_are_a_function_of_seed_epoch_and_index(allison_dir, tiny_config):
    """Crops repeat exactly on resume, differ across epochs and devices, ignore worker seeding."""
    long_clip = allison_dir / "wavs" / "vm-review.flac"  # 7.75 s: many possible crops
    splits = DataSplits(train=[long_clip] * 4, val=[])
    dataset = HiFiGANDataModule(tiny_config, splits, batch_size=2, num_workers=0, seed=7)
    dataset.setup("fit")
    data = dataset.train_dataset
    first = data[(0, 1)]["audio"]
    torch.testing.assert_close(data[(0, 1)]["audio"], first, rtol=0, atol=0)
    assert not torch.equal(data[(1, 1)]["audio"], first)  # next epoch
    assert not torch.equal(data[(0, 2)]["audio"], first)  # another index (another device's share)


def test_lightning_fit_sets_epochs_and_keeps_the_samplers(tmp_path, tiny_config):
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import DistributedSampler

    class Consumer(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(80, 1)
            self.seen: list[list[str]] = []

        def on_train_epoch_start(self):
            self.seen.append([])

        def training_step(self, batch, batch_idx):
            assert set(batch) == {"mel", "audio", "mel_loss", "name"}
            self.seen[-1] += batch["name"]
            return self.layer(batch["mel"].transpose(1, 2)).mean()

        def validation_step(self, batch, batch_idx):
            assert batch["audio"].shape[0] == 1

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    files = good_files(tmp_path, 10, seconds=0.3)
    dm = HiFiGANDataModule(tiny_config, DataSplits(train=files[:8], val=files[8:]), batch_size=2, num_workers=0)
    model = Consumer()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert [len(s) for s in model.seen] == [8, 8] and model.seen[0] != model.seen[1]
    # Lightning can rebuild our loader with its own DistributedSampler (validation under DDP)
    loader = dm.val_dataloader()
    rebuilt = _update_dataloader(loader, DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=False))
    assert type(rebuilt) is type(loader) and rebuilt.failures is loader.failures
    assert [b["name"] for b in rebuilt] == [["g09"]]
