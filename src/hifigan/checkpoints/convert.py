"""Loading generators and discriminators from every checkpoint layout we accept.

Layouts:
- ours (`format: "hifigan"`): generator exports and training checkpoints,
  config embedded;
- the authors' `g_XXXXXXXX` (`{"generator": state_dict}`) and `do_XXXXXXXX`
  (`{"mpd", "msd", ...}`) files, weight norm as `weight_g`/`weight_v` and
  spectral norm as `weight_orig`/`weight_u`/`weight_v`; their config.json
  beside the file is used when no config is given;
- NVIDIA DeepLearningExamples / NGC generator checkpoints (see nvidia.py).

Old-style norm keys are renamed to torch's parametrization keys, and every
tensor's shape is checked before loading, so a checkpoint that does not fit
the config gets an error naming the layer and both shapes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from ..config import PRESETS, HiFiGANConfig, preset, resolve_config
from ..errors import CheckpointError, ConfigError
from ..models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator
from ..models.generator import fold_weight_parametrization
from .io import config_of, is_our_format, read_checkpoint

ConfigLike = Union[str, Path, HiFiGANConfig, dict, None]
StateDict = dict[str, torch.Tensor]


# ---- key conversion ----------------------------------------------------------------

def from_legacy_norm_keys(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename `torch.nn.utils.weight_norm` / `spectral_norm` keys to parametrization keys."""
    spectral_prefixes = {k[: -len("weight_orig")] for k in state if k.endswith("weight_orig")}
    out: StateDict = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        prefix = prefix + "." if prefix else ""
        if prefix in spectral_prefixes and leaf in ("weight_orig", "weight_u", "weight_v"):
            new_leaf = {
                "weight_orig": "parametrizations.weight.original",
                "weight_u": "parametrizations.weight.0._u",
                "weight_v": "parametrizations.weight.0._v",
            }[leaf]
            out[prefix + new_leaf] = value
        elif leaf == "weight_g":
            out[prefix + "parametrizations.weight.original0"] = value
        elif leaf == "weight_v":
            out[prefix + "parametrizations.weight.original1"] = value
        else:
            out[key] = value
    return out


def _is_folded(state: Mapping[str, torch.Tensor]) -> bool:
    return not any("parametrizations.weight.original" in k for k in state)


def _fold_all(module: nn.Module) -> None:
    for sub in module.modules():
        fold_weight_parametrization(sub)


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """`load_state_dict` with errors that name the mismatching layer and both shapes."""
    state = from_legacy_norm_keys(state)
    if _is_folded(state):
        _fold_all(module)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    for key, tensor in expected.items():
        if key in state and tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: layer {key!r} has shape {tuple(state[key].shape)} in the checkpoint "
                f"but {tuple(tensor.shape)} in the model built from the config"
            )
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {_short_list(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_short_list(unexpected)}")
        raise CheckpointError(f"{source} does not fit the config: " + "; ".join(parts))
    module.load_state_dict({k: state[k] for k in expected}, strict=True)


def _short_list(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# ---- generator -------------------------------------------------------------------

def generator_state_of(data: dict[str, Any], path: str | Path) -> tuple[StateDict, Optional[HiFiGANConfig]]:
    """The generator weights in a checkpoint dict, with the config it embeds (if any)."""
    if is_our_format(data):
        config = config_of(data, path)
        if "generator" in data:
            return data["generator"], config
        if "state_dict" in data:  # a Lightning training checkpoint of ours
            # the EMA of the generator weights, when the run kept one, is what a run exports
            for prefix in ("generator_ema.", "generator."):
                state = {k[len(prefix):]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
                if state:
                    return state, config
        raise CheckpointError(f"checkpoint {path} holds no generator weights")
    from .nvidia import is_nvidia_checkpoint, nvidia_generator_state

    if is_nvidia_checkpoint(data):
        return nvidia_generator_state(data, path)
    if "generator" in data and isinstance(data["generator"], dict):
        return data["generator"], None
    if "mpd" in data and "msd" in data:
        raise CheckpointError(
            f"{path} is a discriminator checkpoint (do_ file); a generator needs the matching g_ file"
        )
    raise CheckpointError(
        f"{path} is not a generator checkpoint this package knows: expected our format, the "
        f"authors' {{'generator': state_dict}} or NVIDIA's; found keys {sorted(map(str, data))[:8]}"
    )


def _config_beside(path: Path) -> Optional[HiFiGANConfig]:
    candidate = path.parent / "config.json"
    if candidate.exists():
        return HiFiGANConfig.load(candidate)
    return None


def _preset_matching(state: StateDict) -> Optional[HiFiGANConfig]:
    """The preset whose generator has exactly these tensor shapes, if one does."""
    converted = from_legacy_norm_keys(state)
    for name in PRESETS:
        config = preset(name)
        model = Generator(config.generator, n_mels=config.audio.n_mels)
        if _is_folded(converted):
            _fold_all(model)
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if shapes == {k: tuple(v.shape) for k, v in converted.items()}:
            return config
    return None


def load_generator(
    path: str | Path,
    config: ConfigLike = None,
    *,
    fold_weight_norm: bool = True,
    device: Union[str, torch.device] = "cpu",
    return_config: bool = False,
) -> Union[Generator, tuple[Generator, HiFiGANConfig]]:
    """Read a generator checkpoint (ours or the authors') into our `Generator`, in eval mode.

    The config is, in order: `config` if given (a preset name, a file, or an
    object); the one embedded in our checkpoints; a `config.json` beside the
    file (the authors ship one); or the preset whose shapes the weights fit.
    """
    path = Path(path)
    data = read_checkpoint(path)
    state, embedded = generator_state_of(data, path)
    if config is not None:
        cfg = resolve_config(config)
    elif embedded is not None:
        cfg = embedded
    else:
        cfg = _config_beside(path) or _preset_matching(state)
        if cfg is None:
            raise ConfigError(
                f"{path}: no config given, no config.json beside it, and its shapes fit none of the "
                f"presets {sorted(PRESETS)}; pass config=<preset or config file>"
            )
    generator = Generator(cfg.generator, n_mels=cfg.audio.n_mels)
    load_state_checked(generator, state, str(path))
    if fold_weight_norm:
        generator.fold_weight_norm()
    generator.eval().to(device)
    return (generator, cfg) if return_config else generator


# ---- discriminators --------------------------------------------------------------

def load_discriminators(
    path: str | Path, config: ConfigLike = None, device: Union[str, torch.device] = "cpu"
) -> tuple[MultiPeriodDiscriminator, MultiScaleDiscriminator]:
    """Read the authors' `do_` file (or one of our training checkpoints) into `(mpd, msd)`, eval mode."""
    path = Path(path)
    data = read_checkpoint(path)
    if is_our_format(data) and "state_dict" in data:
        cfg = config_of(data, path) if config is None else resolve_config(config)
        states = {
            name: {k[len(name) + 1:]: v for k, v in data["state_dict"].items() if k.startswith(name + ".")}
            for name in ("mpd", "msd")
        }
    elif "mpd" in data and "msd" in data:
        if config is not None:
            cfg = resolve_config(config)
        else:
            cfg = _config_beside(path) or preset("v1")
        states = {"mpd": data["mpd"], "msd": data["msd"]}
    else:
        raise CheckpointError(
            f"{path} holds no discriminators: expected the authors' do_ file with 'mpd' and 'msd', "
            f"or a training checkpoint of ours; found keys {sorted(map(str, data))[:8]}"
        )
    mpd = MultiPeriodDiscriminator(cfg.discriminator.periods)
    msd = MultiScaleDiscriminator(cfg.discriminator.num_scales)
    load_state_checked(mpd, states["mpd"], f"{path} (mpd)")
    load_state_checked(msd, states["msd"], f"{path} (msd)")
    return mpd.eval().to(device), msd.eval().to(device)
