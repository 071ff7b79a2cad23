"""NVIDIA DeepLearningExamples / NGC HiFi-GAN generator checkpoints.

Their training (PyTorch/SpeechSynthesis/HiFiGAN, `common/utils.py`
Checkpointer) saves `hifigan_gen_checkpoint_<epoch>.pt` as a dict:

- `generator`: the state dict (`gen` in some older files), weight norm as
  `weight_g`/`weight_v`; a DDP-wrapped model may leave a `module.` prefix;
- `gen_ema`: EMA weights or None; `train_state`: epoch/iteration counters;
- `config`: the generator architecture, under the same names as ours
  (upsample_rates, upsample_kernel_sizes, upsample_initial_channel,
  resblock, resblock_kernel_sizes, resblock_dilation_sizes);
- `train_setup`: the audio settings, named sampling_rate, filter_length
  (n_fft), hop_length, win_length, num_mels, mel_fmin, mel_fmax,
  mel_fmax_loss, segment_size (and max_wav_value, seed, base_lr, ...).

Their generator groups resblocks per upsampling level (`resblocks.<level>.
<kernel>.`) where the authors' and ours are flat (`resblocks.<level * kernels +
kernel>.`); files from before that change are flat already. Some files hold
conv weights with a trailing singleton axis; it is dropped. Their mel front
end is the authors', so the audio settings map one to one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from ...config import AudioConfig, GeneratorConfig, HiFiGANConfig, TrainingConfig
from ...errors import CheckpointError, ConfigError
from ..source import CheckpointSource
from .base import NESTED_RESBLOCK, CheckpointFormat, ImportedGenerator, StateDict, flatten_resblocks, resblocks_per_level

_NVIDIA_ONLY_KEYS = ("train_setup", "train_state", "gen_ema")
_GENERATOR_CONFIG_KEYS = (
    "upsample_rates",
    "upsample_kernel_sizes",
    "upsample_initial_channel",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
)
# train_setup name -> (AudioConfig field, converter)
_AUDIO_KEYS = {
    "sampling_rate": ("sampling_rate", int),
    "filter_length": ("n_fft", int),
    "hop_length": ("hop_length", int),
    "win_length": ("win_length", int),
    "num_mels": ("n_mels", int),
    "mel_fmin": ("fmin", float),
    "mel_fmax": ("fmax", float),
    "mel_fmax_loss": ("fmax_for_loss", float),
}


def _generator_weights(data: Mapping[str, Any]) -> Optional[Mapping[str, torch.Tensor]]:
    for key in ("generator", "gen"):
        value = data.get(key)
        if isinstance(value, Mapping):
            return value
    return None


def is_nvidia_checkpoint(data: Mapping[str, Any]) -> bool:
    """A generator dict with NVIDIA's bookkeeping keys, config, or resblock layout."""
    state = _generator_weights(data)
    if state is None:
        return False
    if any(key in data for key in _NVIDIA_ONLY_KEYS) or "gen" in data:
        return True
    if isinstance(data.get("config"), Mapping) and "upsample_rates" in data["config"]:
        return True
    return any(k.startswith("module.") or NESTED_RESBLOCK.match(k) for k in state)


def nvidia_generator_state(data: Mapping[str, Any], path: str | Path) -> tuple[StateDict, Optional[HiFiGANConfig]]:
    """The generator weights renamed to our (the authors') layout, and the config if the file has one."""
    state = _generator_weights(data)
    if state is None:
        raise CheckpointError(f"{path}: NVIDIA checkpoint without generator weights")
    config = nvidia_config(data, path)
    renamed: StateDict = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[-1] == 1:
            value = value.squeeze(-1)  # conv1d weights stored as conv2d (NHWC export fix)
        renamed[key] = value
    kernels = len(config.generator.resblock_kernel_sizes) if config is not None else resblocks_per_level(renamed)
    return flatten_resblocks(renamed, kernels), config


def nvidia_config(data: Mapping[str, Any], path: str | Path) -> Optional[HiFiGANConfig]:
    """Our config from `config` (architecture) and `train_setup` (audio), or None without `config`."""
    arch = data.get("config")
    if not isinstance(arch, Mapping):
        return None
    missing = [k for k in _GENERATOR_CONFIG_KEYS if k not in arch]
    if missing:
        raise CheckpointError(f"{path}: the NVIDIA checkpoint's config lacks {missing}")
    setup = data.get("train_setup") or {}
    audio_kwargs: dict[str, Any] = {}
    for theirs, (ours, convert) in _AUDIO_KEYS.items():
        if setup.get(theirs) is not None:
            audio_kwargs[ours] = convert(setup[theirs])
    try:
        generator = GeneratorConfig(
            resblock=str(arch["resblock"]),
            upsample_rates=[int(v) for v in arch["upsample_rates"]],
            upsample_kernel_sizes=[int(v) for v in arch["upsample_kernel_sizes"]],
            upsample_initial_channel=int(arch["upsample_initial_channel"]),
            resblock_kernel_sizes=[int(v) for v in arch["resblock_kernel_sizes"]],
            resblock_dilation_sizes=[[int(d) for d in ds] for ds in arch["resblock_dilation_sizes"]],
        )
        training = TrainingConfig(segment_size=int(setup.get("segment_size", 8192)))
        return HiFiGANConfig(
            name=Path(path).stem, audio=AudioConfig(**audio_kwargs), generator=generator, training=training
        ).validate()
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the NVIDIA checkpoint's settings are not usable: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the NVIDIA checkpoint's config: {exc}") from None


def detect(source: CheckpointSource) -> bool:
    data = source.data if source.kind in ("torch-zip", "pickle") else None
    return isinstance(data, dict) and is_nvidia_checkpoint(data)


def read(source: CheckpointSource) -> ImportedGenerator:
    state, config = nvidia_generator_state(source.data, source.path)
    notes = [] if config is not None else ["no config in the file: the architecture is the preset its shapes fit"]
    extra = {key: source.data[key] for key in ("train_state", "train_setup") if key in source.data}
    return ImportedGenerator(state, config, "nvidia", [source.path], notes, extra)


FORMAT = CheckpointFormat(
    name="nvidia", toolkit="NVIDIA DeepLearningExamples / NGC",
    files="hifigan_gen_checkpoint_<epoch>.pt (config and train_setup inside)",
    detect=detect, read=read,
)
