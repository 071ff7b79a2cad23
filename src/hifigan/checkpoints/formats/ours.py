"""Our own files (`format: "hifigan"`): generator exports and Lightning training checkpoints, config inside."""
from __future__ import annotations

from ...errors import CheckpointError
from ..io import config_of, is_our_format
from ..source import CheckpointSource
from .base import CheckpointFormat, ImportedGenerator, strip_prefix


EXPORT_NAME = "generator.pt"  # what a run directory (training/checkpointing.py) and a model repo hold


def _file(source: CheckpointSource) -> CheckpointSource:
    """A folder (a run directory, a downloaded model repo) stands for the generator export in it."""
    return source.file_for(EXPORT_NAME) or source


def _data(source: CheckpointSource):
    return source.data if source.kind in ("torch-zip", "pickle") else None


def detect(source: CheckpointSource) -> bool:
    data = _data(_file(source))
    return isinstance(data, dict) and is_our_format(data)


def read(source: CheckpointSource) -> ImportedGenerator:
    source = _file(source)
    data = source.data
    config = config_of(data, source.path)
    if "generator" in data:
        return ImportedGenerator(data["generator"], config, "hifigan", [source.path])
    if "state_dict" in data:  # a Lightning training checkpoint of ours
        # the EMA of the generator weights, when the run kept one, is what a run exports
        for prefix in ("generator_ema.", "generator."):
            state = strip_prefix(data["state_dict"], prefix)
            if state:
                notes = ["the generator's EMA weights"] if prefix == "generator_ema." else []
                return ImportedGenerator(state, config, "hifigan", [source.path], notes)
    raise CheckpointError(f"checkpoint {source.path} holds no generator weights")


FORMAT = CheckpointFormat(
    name="hifigan", toolkit="this package",
    files="generator.pt / *.ckpt with the config embedded (or a folder with generator.pt)",
    detect=detect, read=read,
)
