"""Our generators stored as safetensors: `model.safetensors` (+ `config.json`), as Hub repos hold them.

`hifigan.hub.save_pretrained` and `hifigan export --format safetensors` write
the folded float32 generator weights as plain tensors (a safetensors file
carries no code, so nothing is ever unpickled) with our config, front end
included, in `config.json` beside them and in the file's own metadata
(`hifigan_config`), so a lone `.safetensors` file loads too. A folder stands
for the `model.safetensors` in it. When both configs are present they must
agree: one of them was edited, and guessing which one is meant would load the
weights with the wrong front end.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ...config import HiFiGANConfig
from ...errors import CheckpointError
from ..source import CheckpointSource
from .base import CheckpointFormat, ImportedGenerator, StateDict

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA_KEY = "hifigan_config"  # the key ONNX exports use for the same JSON (inference/export.py)
HUB_INSTALL = 'pip install "hifigan[hub]"'


def _weights(source: CheckpointSource) -> Optional[CheckpointSource]:
    return source.file_for(WEIGHTS_NAME)


def detect(source: CheckpointSource) -> bool:
    weights = _weights(source)
    return weights is not None and weights.kind == "safetensors"


def read_tensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    """The tensors (on CPU) and the string metadata of a safetensors file."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise CheckpointError(f"{path}: reading .safetensors files needs the hub extra: {HUB_INSTALL}") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            state = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # the library's SafetensorError, OSError: a damaged or truncated file
        text = str(exc).strip().splitlines()
        raise CheckpointError(f"{path}: not a readable safetensors file ({text[0] if text else type(exc).__name__})"
                              ) from None
    return state, metadata


def _config(weights: CheckpointSource, metadata: dict[str, str], files: list[Path],
            notes: list[str]) -> Optional[HiFiGANConfig]:
    embedded = None
    if metadata.get(METADATA_KEY):
        try:
            data = json.loads(metadata[METADATA_KEY])
        except ValueError:
            raise CheckpointError(f"{weights.path}: the {METADATA_KEY!r} metadata is not valid JSON") from None
        embedded = HiFiGANConfig.from_dict(data, source=f"config in {weights.path}")
    beside_path = weights.beside(CONFIG_NAME)
    if beside_path is None:
        if embedded is None:
            notes.append(f"no {CONFIG_NAME} beside the weights and no config in their metadata: "
                         "the preset its shapes fit")
        return embedded
    beside = HiFiGANConfig.load(beside_path)  # ours, or the authors' flat config.json
    files.append(beside_path)
    if embedded is not None and embedded.to_dict() != beside.to_dict():
        raise CheckpointError(f"{beside_path} differs from the config in the metadata of {weights.path}: "
                              "remove the one that does not belong to these weights")
    return beside


def read(source: CheckpointSource) -> ImportedGenerator:
    weights = _weights(source)
    state, metadata = read_tensors(weights.path)
    if not any(key.startswith("conv_pre.") for key in state):
        raise CheckpointError(f"{weights.path} is a safetensors file without HiFi-GAN generator weights "
                              f"(tensors {sorted(state)[:5]})")
    files, notes = [weights.path], []
    config = _config(weights, metadata, files, notes)
    return ImportedGenerator(state, config, "safetensors", files, notes)


FORMAT = CheckpointFormat(
    name="safetensors", toolkit="this package (safetensors, Hugging Face Hub layout)",
    files="model.safetensors + config.json beside it (or the config in its metadata), or the folder",
    detect=detect, read=read,
)
