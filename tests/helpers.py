"""Small helpers shared by test modules (imported as `helpers`: pytest puts tests/ on the path)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_mel(path: Path, content) -> Path:
    """Write `content` as a mel file the way a user's tool would: raw bytes, .npy, or torch.save."""
    if isinstance(content, bytes):  # not an array at all
        path.write_bytes(content)
    elif path.suffix == ".npy":
        np.save(path, content)
    else:
        torch.save(content, path)
    return path
