import os
import signal
import subprocess
import sys
import textwrap

import torch

from hifigan.checkpoints import atomic_torch_save


def test_atomic_save_replaces_whole_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"step": 1}, path)
    atomic_torch_save({"step": 2}, path)
    assert torch.load(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind


def test_kill_during_save_leaves_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"step": 1, "weights": torch.zeros(10)}, path)
    # A child process writes a large checkpoint and is SIGKILLed mid-write.
    script = textwrap.dedent(
        f"""
        import torch, sys
        from hifigan.checkpoints import atomic_torch_save
        print("ready", flush=True)
        atomic_torch_save({{"step": 2, "weights": torch.zeros(400_000_000 // 4)}}, {str(path)!r})
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    # wait until the temporary file exists, then kill
    for _ in range(2000):
        if any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            break
        child.poll()
        if child.returncode is not None:
            break
        import time

        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert torch.load(path)["step"] in (1, 2)  # never a torn file
    assert torch.load(path, weights_only=True)["weights"].numel() in (10, 100_000_000)
