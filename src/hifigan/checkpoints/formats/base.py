"""What an importer is, and what it returns."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from ...config import HiFiGANConfig
from ..source import CheckpointSource

StateDict = dict[str, torch.Tensor]


@dataclass
class ImportedGenerator:
    """Generator weights in our layout (old-style weight_g/weight_v names allowed) and what was read."""

    state: StateDict
    config: Optional[HiFiGANConfig]  # None: the caller resolves one (given, or the preset the shapes fit)
    format: str  # the registry name of the format that read it
    files: list[Path] = field(default_factory=list)  # every file read, the weights first
    notes: list[str] = field(default_factory=list)  # what was inferred or converted, for `hifigan inspect`
    extra: dict = field(default_factory=dict)  # format-specific data (e.g. training state for fine-tuning)


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint layout: `detect` looks without side effects, `read` imports the generator."""

    name: str  # registry key, e.g. "parallel-wavegan"
    toolkit: str  # who writes it, for messages and docs
    files: str  # what is read, for docs and `hifigan inspect`
    detect: Callable[[CheckpointSource], bool]
    read: Callable[[CheckpointSource], ImportedGenerator]
    # a one-line description of a file that is this toolkit's but holds no generator, or None
    describe: Callable[[CheckpointSource], Optional[str]] = lambda source: None


def strip_prefix(state: dict, prefix: str) -> StateDict:
    """The entries under `prefix` with it removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def tensors_only(state: object) -> bool:
    return isinstance(state, dict) and bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


NESTED_RESBLOCK = re.compile(r"^resblocks\.(\d+)\.(\d+)\.(.*)$")


def resblocks_per_level(state: dict) -> int:
    """Kernels per upsampling level in a nested `resblocks.<level>.<kernel>.` layout (1 if flat)."""
    kernels = {int(m.group(2)) for k in state if (m := NESTED_RESBLOCK.match(k))}
    return max(kernels) + 1 if kernels else 1


def flatten_resblocks(state: dict, kernels: Optional[int] = None) -> StateDict:
    """NVIDIA's and NeMo's nested `resblocks.<level>.<kernel>.` -> our flat `resblocks.<level * K + kernel>.`."""
    kernels = kernels or resblocks_per_level(state)
    out: StateDict = {}
    for key, value in state.items():
        match = NESTED_RESBLOCK.match(key)
        if match:
            level, kernel, rest = int(match.group(1)), int(match.group(2)), match.group(3)
            key = f"resblocks.{level * kernels + kernel}.{rest}"
        out[key] = value
    return out
