"""`finetune()`: continue training from trained weights, on (mel, real audio) pairs or on audio.

Sources (`--from`): a registered model (`universal-v1`, `lj-v1`, see
`hifigan.pretrained`), one of our training checkpoints (generator and
discriminators), one of our generator exports, or the authors' `g_` file; the
authors' `do_` file beside a `g_` file (same suffix) or given with
`discriminators=` supplies the discriminators, which are fresh otherwise.

Learning rate, in both recipes: the run starts where the source's schedule
stood, times the recipe's `finetune_lr_factor`:
`learning_rate * lr_decay ** source_epoch * finetune_lr_factor`. With the
authors' recipe (factor 1) this is their fine-tuning, which reloads the
checkpoint's epoch into the scheduler; with NVIDIA's (factor 3) it is their
`adjust_fine_tuning_lr` applied to the decayed rate of the checkpoint. The
source epoch is known for our training checkpoints, the authors' `do_`
files and NVIDIA's checkpoints (`train_state["epoch"]`; from NVIDIA's
epoch-6500 LJ Speech checkpoint: 3e-4 x 0.9998^6500 x 3 = 2.45e-4); another
generator alone starts the schedule at epoch 0. Adam moments and fp16 loss
scalers: NVIDIA's discriminator file holds both optimisers' states and both
scalers (`optim_g`, `optim_d`, `scaler_g`, `scaler_d`), and NVIDIA's
fine-tuning keeps them: so does ours when that file is loaded (the learning
rate set as above); every other source starts them fresh. The step counter of
the new run starts at 0.

Length: NVIDIA's `scripts/fine_tune.sh` runs to epoch 10000 from their
6500-epoch checkpoint, 3500 more epochs; a fine-tuning run with NVIDIA's
recipe therefore runs `NVIDIA_FINETUNE_EPOCHS` (3500) epochs unless
`training.max_epochs` is given. An NVIDIA checkpoint takes NVIDIA's recipe
(and its discriminator settings) by default, and its discriminator file
`hifigan_discrim_checkpoint_<epoch>.pt` beside the generator's is loaded.

A fine-tuning run is an ordinary run: re-running the same command on the same
RUN_DIR resumes it from its own checkpoints, not from the source.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from ..checkpoints import load_discriminators, load_generator, read_checkpoint
from ..checkpoints.io import config_of, is_our_format
from ..checkpoints.source import CheckpointSource
from ..config import HiFiGANConfig
from ..errors import CheckpointError, ConfigError
from ..models import Generator
from .module import NVIDIA_RECIPES
from .recipes import list_recipes, load_recipe
from .run import InitialWeights, _is_rank_zero, RunOptions, TrainResult, apply_overrides, model_differences, train


# NVIDIA's scripts/fine_tune.sh: EPOCHS=10000 "# 6500 + 3500", from their 6500-epoch checkpoint
NVIDIA_FINETUNE_EPOCHS = 3500
NVIDIA_RECIPE = "v1-nvidia"


class FinetuneSource:
    """What a fine-tuning run starts from: weights, their config, and the schedule position.

    `recipe`: the recipe the source's toolkit trains with, when it is not the one named like its
    preset (NVIDIA's checkpoints: `v1-nvidia`).
    """

    def __init__(self, config: HiFiGANConfig, generator: dict[str, torch.Tensor], label: str,
                 mpd: Optional[dict] = None, msd: Optional[dict] = None, epoch: int = 0,
                 has_training_section: bool = False, recipe: Optional[str] = None) -> None:
        self.optimizer_states: Optional[dict[str, Any]] = None  # NVIDIA's optim_g/optim_d/scaler_g/scaler_d
        self.config = config
        self.generator = generator
        self.label = label
        self.mpd = mpd
        self.msd = msd
        self.epoch = epoch
        self.has_training_section = has_training_section
        self.recipe = recipe

    @property
    def has_discriminators(self) -> bool:
        return self.mpd is not None and self.msd is not None


def _with_weight_norm(generator: Generator) -> Generator:
    """Training keeps weight norm: put it back on a generator whose weights were folded."""
    if generator.has_weight_norm:
        return generator
    for module in generator.modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)) and not parametrize.is_parametrized(module, "weight"):
            weight_norm(module)
    return generator


def _discriminators_beside(path: Path) -> Optional[Path]:
    """The authors save g_00100000 and do_00100000 side by side; NVIDIA hifigan_gen_checkpoint_<epoch>.pt
    and hifigan_discrim_checkpoint_<epoch>.pt."""
    candidate = None
    if path.name.startswith("g_"):
        candidate = path.with_name("do_" + path.name[2:])
    elif path.name.startswith("hifigan_gen_checkpoint_"):
        candidate = path.with_name("hifigan_discrim_checkpoint_" + path.name[len("hifigan_gen_checkpoint_"):])
    if candidate is not None and candidate.is_file():
        return candidate
    return None


def _nvidia_epoch(train_state: Any) -> int:
    """The epoch an NVIDIA checkpoint was saved at (`train_state["epoch"]`), 0 when it has none."""
    value = train_state.get("epoch", 0) if isinstance(train_state, dict) else 0
    return int(value) if isinstance(value, (int, float)) and value >= 0 else 0


def _epoch_of(data: dict[str, Any]) -> int:
    """Epochs of learning-rate decay behind a checkpoint."""
    schedulers = data.get("lr_schedulers")
    if schedulers:  # ours: the scheduler's own count
        return int(schedulers[0].get("last_epoch", 0))
    value = data.get("epoch", 0)  # the authors' do_ file (and NVIDIA's discriminator file): its epoch
    if not isinstance(value, (int, float)) and isinstance(data.get("train_state"), dict):
        value = data["train_state"].get("epoch", 0)
    return int(value) if isinstance(value, (int, float)) and value >= 0 else 0


def _hub_repo(text: str) -> bool:
    from ..hub import is_repo_id

    return is_repo_id(text)


def hub_folder(name: str) -> Path:
    """The local snapshot of a Hugging Face Hub repo (`owner/name[@revision]`), downloaded if needed."""
    from ..hub import download

    return download(name)


def load_source(source: Union[str, Path], discriminators: Union[str, Path, None] = None,
                fresh_discriminators: bool = False) -> FinetuneSource:
    """Read the starting weights (see the module doc for what `source` may be)."""
    from .. import pretrained

    text = str(source)
    path = Path(text)
    if not path.exists() and text in pretrained.MODELS:
        generator, config = pretrained.load_pretrained(text, fold_weight_norm=False)
        state = _with_weight_norm(generator).state_dict()
        found = FinetuneSource(config, state, f"{text} ({pretrained.MODELS[text].source})")
    elif not path.exists() and _hub_repo(text):
        return load_source(hub_folder(text), discriminators, fresh_discriminators)
    elif not path.exists():
        raise CheckpointError(
            f"--from {text}: no such file, and not a registered model ({', '.join(pretrained.MODELS)})"
        )
    else:
        # our training checkpoints carry the whole run; anything else is read by the format importers
        checkpoint = CheckpointSource(path)
        data = checkpoint.data if checkpoint.kind in ("torch-zip", "pickle") else {}
        if is_our_format(data) and data.get("kind") == "training":
            config = config_of(data, path)
            states = data["state_dict"]
            pick = lambda prefix: {k[len(prefix):]: v for k, v in states.items() if k.startswith(prefix)}
            found = FinetuneSource(config, pick("generator."), str(path), epoch=_epoch_of(data),
                                   has_training_section=True)
            if not fresh_discriminators and discriminators is None:
                found.mpd, found.msd = pick("mpd."), pick("msd.")
        else:
            generator, config, imported = load_generator(path, fold_weight_norm=False, return_import=True)
            found = FinetuneSource(config, _with_weight_norm(generator).state_dict(), str(path),
                                   has_training_section=imported.format == "hifigan")
            if imported.format == "nvidia":
                # NVIDIA's schedule position and recipe, and their discriminators (AvgPool1d padding 1)
                found.epoch = _nvidia_epoch(imported.extra.get("train_state"))
                found.recipe = NVIDIA_RECIPE
                found.config = HiFiGANConfig.from_dict(
                    {**config.to_dict(), "discriminator": load_recipe(NVIDIA_RECIPE).to_dict()["discriminator"]},
                    source=f"{path} with NVIDIA's discriminators")
            if discriminators is None and not fresh_discriminators:
                discriminators = _discriminators_beside(path)
    if discriminators is not None and not fresh_discriminators:
        disc_path = Path(discriminators)
        if found.config.training.discriminator_channel_divisor != 1:
            raise ConfigError("the authors' discriminators have the paper's widths; "
                              "training.discriminator_channel_divisor must be 1")
        mpd, msd = load_discriminators(disc_path, config=found.config)
        found.mpd, found.msd = mpd.state_dict(), msd.state_dict()
        disc_data = read_checkpoint(disc_path)
        found.epoch = _epoch_of(disc_data)
        found.optimizer_states = nvidia_optimizer_states(disc_data)
    return found


def nvidia_optimizer_states(data: dict[str, Any]) -> Optional[dict[str, Any]]:
    """NVIDIA's discriminator file's optimiser and loss-scaler states, for the run to continue them."""
    if not all(isinstance(data.get(key), dict) for key in ("optim_g", "optim_d")):
        return None
    scalers = {side: data[key] for side, key in (("generator", "scaler_g"), ("discriminator", "scaler_d"))
               if isinstance(data.get(key), dict) and data[key]}
    return {"generator": data["optim_g"], "discriminator": data["optim_d"], "scalers": scalers}


def finetune_config(source: FinetuneSource, config: Any = None,
                    overrides: Optional[dict[str, Any]] = None) -> HiFiGANConfig:
    """The run's config: the recipe's training settings on the source's model.

    Without `config`, our checkpoints keep their own training section and other
    sources take their toolkit's recipe (NVIDIA's: `v1-nvidia`) or the one named
    like their preset (else `v1`, the authors'). A recipe whose model differs from
    the source's is an error. With NVIDIA's recipe the run is NVIDIA's fine-tuning
    length, `NVIDIA_FINETUNE_EPOCHS`, unless `training.max_epochs` is overridden.
    """
    if config is None:
        if source.has_training_section:
            base = source.config
        else:
            name = source.recipe or (source.config.name if source.config.name in list_recipes() else "v1")
            base = load_recipe(name)
            data = base.to_dict()
            for section in ("audio", "generator", "discriminator"):
                data[section] = source.config.to_dict()[section]
            hop = source.config.audio.hop_length
            if data["training"]["segment_size"] % hop:  # e.g. a 24 kHz model (hop 300): its own crop size
                data["training"]["segment_size"] = source.config.training.segment_size
            base = HiFiGANConfig.from_dict(data, source=f"recipe {name} on {source.label}")
    else:
        base = load_recipe(config)
    resolved = apply_overrides(base, overrides or {})
    if resolved.name in NVIDIA_RECIPES and "training.max_epochs" not in (overrides or {}):
        resolved.training.max_epochs = NVIDIA_FINETUNE_EPOCHS  # fine_tune.sh: 6500 + 3500 epochs
    differences = model_differences(source.config, resolved, discriminators=source.has_discriminators)
    if differences:
        raise ConfigError(
            f"the config does not fit the checkpoint {source.label}: " + "; ".join(differences)
        )
    return resolved


def finetune_initial_lr(config: HiFiGANConfig, source_epoch: int) -> float:
    t = config.training
    return t.learning_rate * (t.lr_decay ** source_epoch) * t.finetune_lr_factor


def finetune(
    source: Union[str, Path],
    data: Any = None,
    out: Union[str, Path] = "runs/finetune",
    options: Optional[RunOptions] = None,
    *,
    mels: Union[str, Path, None] = None,
    config: Any = None,
    overrides: Optional[dict[str, Any]] = None,
    discriminators: Union[str, Path, None] = None,
    fresh_discriminators: bool = False,
    datamodule: Any = None,
) -> TrainResult:
    """Fine-tune `source` on `data` (with `mels`: generated mels paired with the real audio)."""
    options = options or RunOptions()
    if mels is not None:
        options = dataclasses.replace(options, mel_dir=str(mels))
    found = load_source(source, discriminators, fresh_discriminators)
    base = finetune_config(found, config, overrides)

    def init_factory(resolved: HiFiGANConfig) -> InitialWeights:
        initial_lr = finetune_initial_lr(resolved, found.epoch)
        disc = "loaded" if found.has_discriminators else "fresh"
        if found.optimizer_states is not None:
            disc += ", with their optimiser and loss-scaler states"
        if _is_rank_zero():
            epochs = resolved.training.max_epochs
            print(f"hifigan finetune: from {found.label}: discriminators {disc}, schedule epoch {found.epoch}, "
                  f"learning rate {initial_lr:.3g}, {epochs if epochs is not None else 'unlimited'} epochs",
                  flush=True)
        return InitialWeights(found.generator, found.mpd, found.msd, initial_lr=initial_lr, source=found.label,
                              optimizer_states=found.optimizer_states)

    return train(base, data, out, options, datamodule=datamodule, init_factory=init_factory)
