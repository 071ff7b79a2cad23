"""Runs through the command line in their own processes: two-process DDP on CPU (gloo), and a run
killed with SIGKILL that resumes where its last checkpoint left it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from test_train_run import tiny_corpus

TINY = [
    "--config", "v1", "--accelerator", "cpu", "--no-progress",
    "--set", "generator.upsample_initial_channel=16",
    "--set", "training.discriminator_channel_divisor=16",
    "--segment-size", "2048", "--num-workers", "0", "--learning-rate", "2e-3",
    "--log-every", "1", "--max-val-utterances", "1",
]


def hifigan(*args: str) -> list[str]:
    return [sys.executable, "-m", "hifigan", *args]


# one thread per process: tiny models run as fast, and two DDP processes fit two cores
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_process_ddp_on_cpu_ends_with_identical_weights(tmp_path, allison_dir):
    data = tiny_corpus(allison_dir, tmp_path / "data")
    out = tmp_path / "run"
    run(hifigan("train", *TINY, "--data", str(data), "--out", str(out), "--devices", "2",
                "--batch-size", "4", "--max-steps", "3", "--val-every", "3", "--checkpoint-every", "3"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 3
    digests = summary["weights_sha256_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    # the two processes trained on different halves of each batch: the run still validated on
    # the validation clip once per step count, with the result merged over processes
    assert [row["step"] for row in summary["validation"]] == [3]
    checkpoint = torch.load(out / "checkpoints" / "step-00000003.ckpt", weights_only=True)
    assert checkpoint["hifigan_state"]["samples_seen"] == 12  # 3 steps x batch 4 in total


def _latest_step(folder: Path) -> int:
    steps = [int(p.name[5:13]) for p in folder.glob("step-*.ckpt")]
    return max(steps, default=0)


def test_sigkill_mid_training_resumes_from_the_last_checkpoint(tmp_path, allison_dir):
    data = tiny_corpus(allison_dir, tmp_path / "data")
    out = tmp_path / "run"
    common = [*TINY, "--data", str(data), "--out", str(out), "--batch-size", "2",
              "--checkpoint-every", "2", "--val-every", "1000", "--set", "training.lr_decay=0.9"]
    victim = subprocess.Popen(hifigan("train", *common, "--max-steps", "1000"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              env=ENV)
    try:
        deadline = time.time() + 300
        while _latest_step(out / "checkpoints") < 4:
            assert victim.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, "no checkpoint at step 4 within 300 s"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # no chance to clean up or save
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    assert victim.returncode == -signal.SIGKILL

    last = max(out.glob("checkpoints/step-*.ckpt"))
    killed_at = torch.load(last, weights_only=True)
    step = killed_at["hifigan_state"]["step"]
    assert step >= 4 and step % 2 == 0

    resumed = run(hifigan("train", *common, "--max-steps", str(step + 2)))
    assert f"from {last}" in resumed.stdout
    assert not list(out.rglob(".*.tmp"))  # a save the kill cut short left nothing behind
    assert not list(out.glob("previous-*"))  # an ordinary resume sets nothing aside
    final = torch.load(out / "checkpoints" / f"step-{step + 2:08d}.ckpt", weights_only=True)
    assert final["hifigan_state"]["step"] == step + 2
    for before, after in zip(killed_at["optimizer_states"], final["optimizer_states"]):
        # Adam's per-parameter step counts continue: the optimiser state was restored, not reset
        assert int(after["state"][0]["step"]) == int(before["state"][0]["step"]) + 2
    epochs_before = killed_at["lr_schedulers"][0]["last_epoch"]
    epochs_after = final["lr_schedulers"][0]["last_epoch"]
    assert epochs_after >= epochs_before  # the learning-rate schedule continues, no restart
    lr = final["optimizer_states"][0]["param_groups"][0]["lr"]
    assert abs(lr - 2e-3 * 0.9 ** epochs_after) < 1e-12
    # 6 clips in batches of 2: an epoch is 3 steps, and a checkpoint at step N has N // 3
    # epochs of decay (one due on an epoch's last step is written after that epoch's decay)
    assert epochs_before == step // 3
    assert epochs_after == (step + 2) // 3
