"""Loading generators and discriminators from every checkpoint layout we accept.

The layouts themselves are the importers of `formats/` (ours, the authors',
NVIDIA's, ParallelWaveGAN, Coqui, SpeechBrain, NeMo); this module turns what
they read into our modules. Discriminators are read from the authors' `do_`
files and our training checkpoints (spectral norm as
`weight_orig`/`weight_u`/`weight_v` in the former).

Old-style norm keys are renamed to torch's parametrization keys, and every
tensor's shape is checked before loading, so a checkpoint that does not fit
the config gets an error naming the layer and both shapes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from ..config import HiFiGANConfig, preset, preset_names, resolve_config
from ..errors import CheckpointError, ConfigError
from ..models import Generator
from ..models.generator import fold_weight_parametrization
from .formats import ImportedGenerator, import_generator
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

def _preset_matching(state: StateDict) -> Optional[HiFiGANConfig]:
    """The preset whose generator has exactly these tensor shapes, if one does."""
    converted = from_legacy_norm_keys(state)
    wanted = {k: tuple(v.shape) for k, v in converted.items()}
    for name in preset_names():
        config = preset(name)
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = Generator(config.generator, n_mels=config.audio.n_mels)
        if _is_folded(converted):
            _fold_all(model)
        if {k: tuple(v.shape) for k, v in model.state_dict().items()} == wanted:
            return config
    return None


def resolve_imported(imported: ImportedGenerator, config: ConfigLike, path: Path) -> HiFiGANConfig:
    """The config for imported weights: `config` if given, the checkpoint's own, or the preset they fit."""
    if config is not None:
        return resolve_config(config)
    if imported.config is not None:
        return imported.config
    matched = _preset_matching(imported.state)
    if matched is None:
        raise ConfigError(
            f"{path}: the checkpoint carries no config, none was found beside it, and its shapes fit none "
            f"of the presets ({', '.join(preset_names())}); pass config=<preset or config file>"
        )
    imported.notes.append(f"architecture: preset {matched.name} (the one its tensor shapes fit)")
    return matched


# No trained generator comes near this (the published ones stay below 10); bit rot in a float's
# exponent gives 1e19..1e38, and the audio comes out as full-scale noise.
MAX_ABS_WEIGHT = 1e4


def check_weights(state: Mapping[str, Any], source: str) -> None:
    """CheckpointError naming the first layer with NaN/inf or absurd values: a damaged file, not a model."""
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.numel() == 0:
            continue
        if not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{source}: layer {key!r} holds NaN or infinite weights: the file is damaged")
        peak = float(value.abs().max())
        if peak > MAX_ABS_WEIGHT:
            raise CheckpointError(
                f"{source}: layer {key!r} holds a weight of magnitude {peak:.3g}, far beyond any trained "
                f"generator's (at most {MAX_ABS_WEIGHT:g}): the file is damaged"
            )


def load_generator(
    path: str | Path,
    config: ConfigLike = None,
    *,
    fold_weight_norm: bool = True,
    device: Union[str, torch.device] = "cpu",
    return_config: bool = False,
    return_import: bool = False,
):
    """Read a generator checkpoint of any known toolkit (see `formats.FORMATS`) into our `Generator`.

    The config is, in order: `config` if given (a preset name, a file, or an
    object); the one the checkpoint carries or keeps beside it (ours embedded,
    the authors' config.json, NVIDIA's config + train_setup, a toolkit's
    config.yml / config.json / hyperparams.yaml / model_config.yaml); or the
    preset whose shapes the weights fit. Returns the generator in eval mode;
    with `return_config` also the config, with `return_import` also the
    `ImportedGenerator` (what was read, for `hifigan inspect`).
    """
    path = Path(path)
    imported = import_generator(path)
    check_weights(imported.state, str(path))
    cfg = resolve_imported(imported, config, path)
    generator = Generator(cfg.generator, n_mels=cfg.audio.n_mels)
    load_state_checked(generator, imported.state, str(path))
    if fold_weight_norm:
        generator.fold_weight_norm()
    generator.eval().to(device)
    if return_import:
        return generator, cfg, imported
    return (generator, cfg) if return_config else generator


# ---- discriminators --------------------------------------------------------------

def load_discriminators(
    path: str | Path, config: ConfigLike = None, device: Union[str, torch.device] = "cpu"
) -> tuple[nn.Module, ...]:
    """Read the authors' `do_` file (or one of our training checkpoints) into the registered
    discriminators (`hifigan.models.DISCRIMINATORS`: `(mpd, msd)`), in registry order, eval mode."""
    from ..models import DISCRIMINATORS, build_discriminators

    path = Path(path)
    data = read_checkpoint(path)
    names = list(DISCRIMINATORS)
    if is_our_format(data) and "state_dict" in data:
        cfg = config_of(data, path) if config is None else resolve_config(config)
        states = {
            name: {k[len(name) + 1:]: v for k, v in data["state_dict"].items() if k.startswith(name + ".")}
            for name in names
        }
    elif all(name in data for name in names):
        if config is not None:
            cfg = resolve_config(config)
        else:
            beside = path.parent / "config.json"
            cfg = HiFiGANConfig.load(beside) if beside.is_file() else preset("v1")
        states = {name: data[name] for name in names}
    else:
        raise CheckpointError(
            f"{path} holds no discriminators: expected the authors' do_ file with "
            f"{' and '.join(repr(n) for n in names)}, or a training checkpoint of ours; "
            f"found keys {sorted(map(str, data))[:8]}"
        )
    modules = build_discriminators(cfg.discriminator)
    for name, module in modules.items():
        load_state_checked(module, states[name], f"{path} ({name})")
    return tuple(module.eval().to(device) for module in modules.values())
