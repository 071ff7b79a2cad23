"""Our checkpoint format, and atomic writes.

Every file we save is a dict with `format: "hifigan"`, a `kind`
("generator" for inference exports, "training" for full state) and the
model's `config` as plain data, so it loads with `weights_only=True` and
never needs the user to remember the preset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import HiFiGANConfig
from ..files import atomic_write
from ..errors import CheckpointError, HiFiGANError, first_line

FORMAT_NAME = "hifigan"
FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A crash or kill at any moment leaves either the previous file or the new
    one, never a half-written file. The file gets the mode `open()` would give
    it (0o666 less the umask), not mkstemp's 0o600.
    """
    return atomic_write(path, lambda temporary: torch.save(obj, temporary))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file safely (no pickled code), with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, expected a file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, expected a dict")
    return data


def is_our_format(data: dict[str, Any]) -> bool:
    return data.get("format") == FORMAT_NAME


def save_generator(
    path: str | Path,
    generator_state: dict[str, torch.Tensor],
    config: HiFiGANConfig,
    **extra: Any,
) -> Path:
    """Write an inference checkpoint: the generator weights and the config."""
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": "generator",
        "config": config.to_dict(),
        "generator": {k: v.detach().cpu() for k, v in generator_state.items()},
        **extra,
    }
    return atomic_torch_save(payload, path)


def config_of(data: dict[str, Any], path: str | Path) -> HiFiGANConfig:
    """The config embedded in one of our checkpoints."""
    if "config" not in data:
        raise CheckpointError(f"checkpoint {path} has no embedded config")
    if not isinstance(data["config"], dict):
        raise CheckpointError(f"checkpoint {path}: its embedded config is a {type(data['config']).__name__}, "
                              "expected a mapping of config sections (the file is damaged or not ours)")
    try:
        return HiFiGANConfig.from_dict(data["config"], source=f"config in {path}")
    except HiFiGANError:
        raise
    except (TypeError, ValueError) as exc:  # a value of the wrong type deep in a section
        text = first_line(exc)
        raise CheckpointError(f"checkpoint {path}: its embedded config is not valid ({text})") from None
