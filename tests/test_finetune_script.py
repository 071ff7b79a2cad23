"""scripts/gpu/finetune_allison.sh runs end to end on a CPU with TINY=1, so it cannot rot."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from hifigan import load_generator

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu" / "finetune_allison.sh"


def test_tiny_finetune_allison_script(tmp_path, allison_dir):
    work = tmp_path / "work"
    env = {**os.environ, "TINY": "1", "WORK": str(work), "ALLISON": str(allison_dir), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    # 1: the corpus was prepared at 22.05 kHz with its val list held out of training
    train_list = (work / "data" / "train.txt").read_text().split()
    val_list = (work / "data" / "val.txt").read_text().split()
    assert len(train_list) == 6 and len(val_list) == 2 and not set(train_list) & set(val_list)
    # 3: a fine-tuning run from the source, with fresh discriminators, in bf16-mixed
    assert "discriminators fresh" in done.stdout
    config = yaml.safe_load((work / "run" / "config.yaml").read_text())
    assert config["training"]["precision"] == "bf16-mixed"
    summary = json.loads((work / "run" / "summary.json").read_text())
    assert summary["step"] == 2 and summary["validation"]
    assert list((work / "run" / "checkpoints").glob("step-*.ckpt"))
    assert list((work / "run" / "logs").glob("events.out.tfevents.*"))
    # the export differs from the source: it was trained
    before = load_generator(work / "tiny-source.pt").state_dict()
    after = load_generator(work / "run" / "generator.pt").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # 2 and 4: evaluation before and after, and the comparison
    for name in ("eval-before", "eval-after"):
        assert json.loads((work / name / "metrics.json").read_text())["summary"]["hifigan"]["mel_l1"]["n"] == 2
    rows = {row["metric"]: row for row in json.loads((work / "comparison.json").read_text())}
    assert {"mel_l1", "pesq", "stoi"} <= set(rows)
