"""The run directory of `hifigan train`: nothing lost, nothing garbled, one process at a time.

A module-scoped tiny run (6 steps, a checkpoint and a validation every 2) is copied
for each test, which then breaks it the way a crash, a full disk or a user would.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import torch
import yaml

from hifigan.checkpoints.io import atomic_torch_save
from hifigan.cli.main import main
from hifigan.errors import CheckpointError, ConfigError
from hifigan.training import RunOptions, train
from test_train_run import tiny_corpus, tiny_training

OPTIONS = dict(accelerator="cpu", progress_bar=False, max_val_utterances=1, sanity_val_steps=0)


def step_file(step: int) -> str:
    return f"step-{step:08d}.ckpt"


@pytest.fixture(scope="module")
def base(tmp_path_factory, allison_dir) -> dict[str, Any]:
    import hifigan.config as config_module

    config = config_module.with_generator_channels(config_module.preset("v1"), 16)
    config.training.num_workers = 0
    config = tiny_training(config, max_steps=6, val_every_n_steps=2, checkpoint_every_n_steps=2,
                           keep_checkpoints=3, log_every_n_steps=1, val_audio_samples=0)
    root = tmp_path_factory.mktemp("run-dir")
    data = tiny_corpus(allison_dir, root / "data", train_count=4, val_count=1)
    train(config, data, root / "run", RunOptions(**OPTIONS))
    return {"config": config, "data": data, "run": root / "run"}


class Run:
    """A copy of the base run, and train() on it with a few more steps."""

    def __init__(self, base: dict[str, Any], folder: Path) -> None:
        self.config, self.data = base["config"], base["data"]
        self.dir = folder
        shutil.copytree(base["run"], folder)

    def train(self, max_steps: int, **options: Any):
        overrides = {"training.max_steps": max_steps, **options.pop("overrides", {})}
        return train(self.config, self.data, self.dir, RunOptions(**{**OPTIONS, **options}), overrides=overrides)

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    def steps(self) -> list[int]:
        return sorted(int(p.name[5:13]) for p in self.checkpoints.glob("step-*.ckpt"))

    def history(self) -> list[int]:
        return [json.loads(line)["step"] for line in (self.dir / "validation.jsonl").read_text().splitlines()]

    def aside(self) -> Path:
        folders = sorted(self.dir.glob("previous-*"))
        assert len(folders) == 1, folders
        return folders[0]

    def snapshot(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.dir)): p.read_bytes() for p in sorted(self.dir.rglob("*"))
                if p.is_file() and p.name != ".lock"}


@pytest.fixture
def run(base, tmp_path) -> Run:
    return Run(base, tmp_path / "run")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "\x1b" not in text, text
    return text


# ---- 1. corrupt checkpoints ----------------------------------------------------------------
def test_every_checkpoint_unreadable_refuses_and_restart_sets_the_old_run_aside(run):
    truncate(run.checkpoints / step_file(2))
    truncate(run.checkpoints / step_file(6))
    # a complete file the loader refuses (a global outside the allow-list)
    torch.save({"kind": "training", "state_dict": {}, "path": PurePosixPath("x")}, run.checkpoints / step_file(4))
    before = run.snapshot()
    with pytest.raises(CheckpointError) as caught:
        run.train(8)
    message = one_line(caught)
    assert all(step_file(s) in message for s in (2, 4, 6)) and "--restart" in message
    assert run.snapshot() == before  # nothing wiped, overwritten or pruned

    result = run.train(2, restart=True)
    assert result.step == 2 and result.resumed_from is None
    aside = run.aside()
    for name, data in before.items():  # the old run, byte for byte, in the named folder
        assert (aside / name).read_bytes() == data, name
    assert run.steps() == [2] and run.history() == [2]


def test_corrupt_newest_checkpoint_falls_back_with_a_warning_and_is_set_aside(run, capsys):
    truncate(run.checkpoints / step_file(6))
    old_export = (run.dir / "generator.pt").read_bytes()  # the step-6 weights: their only copy now
    capsys.readouterr()
    result = run.train(8)
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if step_file(6) in line]
    assert len(warning) == 1 and step_file(4) in warning[0] and "previous-" in warning[0], err
    assert result.resumed_from == run.checkpoints / step_file(4) and result.step == 8
    aside = run.aside()
    assert (aside / "checkpoints" / step_file(6)).stat().st_size > 0
    assert (aside / "generator.pt").read_bytes() == old_export
    assert run.steps() == [4, 6, 8]  # the new checkpoints were kept, not pruned as "older"
    assert torch.load(run.checkpoints / step_file(6), weights_only=True)["hifigan_state"]["step"] == 6
    assert run.history() == [2, 4, 6, 8]


def test_restart_and_resume_together_are_refused(run):
    with pytest.raises(ConfigError, match="--restart"):
        run.train(8, restart=True, resume=True)


# ---- 4. resuming an older checkpoint ------------------------------------------------------
def test_resuming_an_older_checkpoint_sets_the_newer_branch_aside(run, capsys):
    capsys.readouterr()
    result = run.train(4, resume=str(run.checkpoints / step_file(2)))
    out = capsys.readouterr()
    assert result.step == 4
    aside = run.aside()
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == [step_file(4), step_file(6)]
    assert str(aside) in out.out + out.err
    assert run.steps() == [2, 4]
    again = run.train(6)  # a plain rerun continues the new branch, not the old step 6
    assert again.resumed_from == run.checkpoints / step_file(4) and again.step == 6


# ---- 3. one process per run directory -------------------------------------------------------
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_on_the_same_run_dir_is_refused(run, capsys):
    stale = run.checkpoints / f".{step_file(8)}.abcd1234.tmp"
    stale.write_bytes(b"partial")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run.dir / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        code = main(["train", "--data", str(run.data), "--out", str(run.dir), "--accelerator", "cpu",
                     "--max-steps", "8", "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert f"PID {holder.pid}" in err and str(run.dir) in err
        assert stale.exists()  # another process's save may be in progress: not ours to clean
        assert run.steps() == [2, 4, 6]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    fd = os.open(run.dir / ".lock", os.O_RDWR)  # the OS released the killed holder's lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_the_lock_is_held_while_training(run):
    from lightning.pytorch import Callback

    seen: list[bool] = []

    class TryLock(Callback):
        def on_train_start(self, trainer, module):
            fd = os.open(run.dir / ".lock", os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append(False)
            except BlockingIOError:
                seen.append(True)
            finally:
                os.close(fd)

    train(run.config, run.data, run.dir, RunOptions(**OPTIONS), overrides={"training.max_steps": 8},
          callbacks=[TryLock()])
    assert seen == [True]
    assert (run.dir / ".lock").read_text().strip() == str(os.getpid())


# ---- 5. stale temporary files -----------------------------------------------------------------
def test_stale_temporary_files_of_our_saves_are_removed_on_the_next_start(run):
    ours = [run.checkpoints / f".{step_file(8)}.k2j3h4l5.tmp", run.dir / ".generator.pt.x_y9zzq1.tmp",
            run.dir / ".summary.json.4242.tmp"]
    others = [run.dir / ".notes.tmp", run.dir / "notes.tmp", run.checkpoints / ".mine.ckpt.abcd1234.tmp"]
    for path in ours + others:
        path.write_bytes(b"partial")
    run.train(6)
    assert [p for p in ours if p.exists()] == []
    assert all(p.exists() for p in others)


# ---- 6. smaller defects ---------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_atomic_saves_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = atomic_torch_save({"x": 1}, tmp_path / "a.pt")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


def test_run_files_share_one_mode(run):
    modes = {p.name: p.stat().st_mode & 0o777 for p in [run.dir / "config.yaml", run.dir / "generator.pt",
                                                         *run.checkpoints.iterdir()]}
    assert len(set(modes.values())) == 1, modes


def test_resume_says_which_learning_rate_is_in_force_and_config_yaml_records_it(run, capsys):
    capsys.readouterr()
    run.train(6, overrides={"training.learning_rate": 1e-3})
    lines = [line for line in capsys.readouterr().out.splitlines() if "learning_rate" in line]
    assert len(lines) == 1 and "0.002" in lines[0] and "0.001" in lines[0], lines
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["training"]["learning_rate"] == 2e-3


def test_a_torn_validation_line_is_dropped_and_new_lines_are_fsynced(run, capsys, monkeypatch):
    history = run.dir / "validation.jsonl"
    with open(history, "a") as handle:
        handle.write('{"step": 7, "epoch": 3, "mel')  # killed mid-write
    synced: list[str] = []
    fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    capsys.readouterr()
    run.train(8)
    assert "validation.jsonl" in capsys.readouterr().err
    assert run.history() == [2, 4, 6, 8]
    assert sum(path == str(history) for path in synced) >= 1


def test_learning_rate_must_be_positive_and_finite(tmp_path, capsys):
    from hifigan.config import preset

    for value in (float("nan"), float("inf"), -1e-4, 0.0):
        config = preset("v1")
        config.training.learning_rate = value
        with pytest.raises(ConfigError, match="training.learning_rate"):
            config.validate()
    (tmp_path / "data").mkdir()
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 "--accelerator", "cpu", "--learning-rate", "nan"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "training.learning_rate" in err, err


@pytest.mark.parametrize("target", ["generator.pt", step_file(8)])
def test_disk_full_during_a_save_stops_with_one_line_and_keeps_the_previous_files(run, monkeypatch, target):
    save = torch.save

    def full_disk(obj, handle, *args, **kwargs):
        if isinstance(handle, (str, Path)):
            name = str(handle)
        else:
            try:
                name = os.readlink(f"/proc/self/fd/{handle.fileno()}")
            except (AttributeError, OSError, ValueError):
                name = str(handle)
        if Path(name).name.startswith(f".{target}."):
            if isinstance(handle, (str, Path)):
                Path(handle).write_bytes(b"PK\x03\x04 half a file")
            else:
                handle.write(b"PK\x03\x04 half a file")
            raise OSError(28, "No space left on device")
        return save(obj, handle, *args, **kwargs)

    before = run.snapshot()
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as caught:
        run.train(8)
    message = one_line(caught)
    assert target in message and "No space left on device" in message
    for name in ("generator.pt", f"checkpoints/{step_file(6)}"):
        assert (run.dir / name).read_bytes() == before[name], name
    assert not list(run.dir.rglob("*.tmp"))
    if target != "generator.pt":
        assert run.steps() == [2, 4, 6]


def test_an_unusable_out_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    (tmp_path / "data").mkdir()
    # a file; a folder under a file; a folder nobody may write to, root included
    for out in (a_file, a_file / "run", Path("/sys")):
        code = main(["train", "--data", str(tmp_path / "data"), "--out", str(out), "--accelerator", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and str(out) in err and "--out" in err, err
    assert a_file.read_text() == "not a folder"


def test_run_options_from_the_command_line(tmp_path):
    from hifigan.cli.main import build_parser
    from hifigan.cli.train import run_options_from

    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--restart", "--max-bad-fraction", "0.2"])
    options = run_options_from(args)
    assert options.restart is True and options.max_failure_fraction == 0.2
    with pytest.raises(ConfigError, match="--max-bad-fraction"):
        train("v1", "d", tmp_path / "run", RunOptions(max_failure_fraction=1.5))
    assert not (tmp_path / "run").exists()
