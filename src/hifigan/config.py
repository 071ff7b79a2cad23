"""Typed configuration: one audio config shared by every stage, model presets v1/v2/v3.

A `HiFiGANConfig` is the single source of truth for a model. It is written into
every checkpoint we save, so loading never needs the user to remember a preset,
and recipe files (YAML) are just its dictionary form.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError


@dataclass
class AudioConfig:
    """Mel front end settings, shared by training, evaluation and synthesis.

    `fmax` bounds the mel the generator sees; `fmax_for_loss` bounds the mel of
    the training loss and of the validation error (None = full band, as the
    authors' recipe does).

    The fields after `fmax_for_loss` describe the front end's dialect: how
    other toolkits frame, scale and normalise their mels (see
    `audio/frontends.py` for the named ones). Their defaults are the authors'
    front end, so a config without them is exactly the original.
    """

    sampling_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: Optional[float] = 8000.0
    fmax_for_loss: Optional[float] = None
    # ---- the dialect (defaults: the authors') ------------------------------------
    frontend: str = "hifigan"  # the dialect's name, for display and for input checks
    preemphasis: float = 0.0  # y[t] = x[t] - a x[t - 1] before the STFT (0: off)
    center: bool = False  # True: pad n_fft // 2 each side, 1 + T // hop frames; False: (n_fft - hop) // 2, T // hop
    pad_mode: str = "reflect"  # how the signal is padded for framing: "reflect" or "constant" (zeros)
    periodic_window: bool = True  # False: the symmetric Hann window (NeMo)
    power: float = 1.0  # 1: magnitude, 2: power spectrum
    magnitude_eps: float = 1e-9  # added to re^2 + im^2 before the square root (0: none)
    mel_scale: str = "slaney"  # "slaney" or "htk" mel frequencies
    mel_norm: Optional[str] = "slaney"  # "slaney" (area-normalised filters) or None
    log: str = "ln"  # "ln" or "log10"
    log_gain: float = 1.0  # the log is multiplied by this (20 with log10: decibels, as Coqui)
    log_floor: float = 1e-5  # the mel is floored before the log ...
    log_floor_mode: str = "clamp"  # ... by "clamp" (max(mel, floor)) or "add" (mel + floor)
    last_frame_value: Optional[float] = None  # the last frame overwritten with this value (NeMo masks it)
    # optional normalisation of the log mel:
    # "per-band": (mel - norm_mean[b]) / norm_scale[b] (ParallelWaveGAN's stats.h5);
    # "db-range": Coqui's ((mel_db - ref_level_db) - min_level_db) / -min_level_db, mapped to
    # [-max_norm, max_norm] if symmetric_norm (else [0, max_norm]) and clipped if clip_norm
    normalize: Optional[str] = None
    norm_mean: Optional[list[float]] = None
    norm_scale: Optional[list[float]] = None
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_norm: float = 4.0
    symmetric_norm: bool = True
    clip_norm: bool = True

    def validate(self) -> None:
        for name in ("sampling_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"audio.{name} must be positive, got {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise ConfigError(
                f"audio.win_length ({self.win_length}) cannot exceed audio.n_fft ({self.n_fft})"
            )
        if self.hop_length > self.n_fft:
            raise ConfigError(
                f"audio.hop_length ({self.hop_length}) cannot exceed audio.n_fft ({self.n_fft})"
            )
        nyquist = self.sampling_rate / 2
        for name in ("fmax", "fmax_for_loss"):
            value = getattr(self, name)
            if value is not None and not (self.fmin < value <= nyquist):
                raise ConfigError(
                    f"audio.{name} = {value} must lie in (fmin={self.fmin}, "
                    f"Nyquist={nyquist}] or be null for the full band"
                )
        choices = {
            "pad_mode": ("reflect", "constant"),
            "mel_scale": ("slaney", "htk"),
            "mel_norm": ("slaney", None),
            "log": ("ln", "log10"),
            "log_floor_mode": ("clamp", "add"),
            "normalize": (None, "per-band", "db-range"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"audio.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.power not in (1.0, 2.0):
            raise ConfigError(f"audio.power must be 1 (magnitude) or 2 (power), got {self.power}")
        if not 0.0 <= self.preemphasis < 1.0:
            raise ConfigError(f"audio.preemphasis must lie in [0, 1), got {self.preemphasis}")
        if not self.log_floor > 0 or self.magnitude_eps < 0:
            raise ConfigError("audio.log_floor must be positive and audio.magnitude_eps not negative")
        if self.normalize == "per-band":
            for name in ("norm_mean", "norm_scale"):
                values = getattr(self, name)
                if values is None or len(values) != self.n_mels:
                    raise ConfigError(
                        f"audio.normalize 'per-band' needs audio.{name} with one value per band "
                        f"({self.n_mels}), got {None if values is None else len(values)}"
                    )
            if any(not (v > 0) for v in self.norm_scale):
                raise ConfigError("audio.norm_scale must be positive in every band")
        if self.normalize == "db-range" and (self.min_level_db >= 0 or self.max_norm <= 0):
            raise ConfigError("audio.normalize 'db-range' needs min_level_db < 0 and max_norm > 0")

    @property
    def frame_ms(self) -> float:
        return 1000.0 * self.hop_length / self.sampling_rate

    @property
    def is_original_frontend(self) -> bool:
        """True for the authors' front end (natural log, their framing, no normalisation)."""
        return all(getattr(self, f.name) == f.default for f in dataclasses.fields(self)
                   if f.name in dialect_fields() and f.name != "frontend")

    def frames(self, samples: int) -> int:
        """Mel frames of a clip of `samples` samples (1 + T // hop when centred, else T // hop)."""
        return samples // self.hop_length + (1 if self.center else 0)


def dialect_fields() -> tuple[str, ...]:
    """Names of the `AudioConfig` fields that describe the front end's dialect (after fmax_for_loss)."""
    names = [f.name for f in dataclasses.fields(AudioConfig)]
    return tuple(names[names.index("fmax_for_loss") + 1:])


@dataclass
class GeneratorConfig:
    """The generator architecture (the paper's Table 5 parameters), plus what other toolkits vary.

    Upsampling layer i (rate u, kernel k) pads ceil((k - u) / 2) with an output
    padding of (k - u) % 2, so it always yields exactly u x its input length:
    for the authors' even k - u that is their (k - u) / 2, and for odd rates
    with k = 2u it is ParallelWaveGAN's u // 2 + u % 2 with output padding u % 2.
    `conv_padding_mode` "reflect" is SpeechBrain's padding of its stride-1
    convolutions. `inference_padding` frames are replicated at both ends of the
    mel by the source toolkit's own inference call (Coqui, SpeechBrain: 5), whose
    output keeps them; `Vocoder(..., toolkit_padding=True)` reproduces that call.
    """

    resblock: str = "1"  # "1": ResBlock1 (V1, V2), "2": ResBlock2 (V3)
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(
        default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    )
    conv_padding_mode: str = "zeros"  # "zeros" (the authors') or "reflect" (SpeechBrain)
    inference_padding: int = 0  # frames the source toolkit's inference call replicates at each end

    def validate(self) -> None:
        if str(self.resblock) not in ("1", "2"):
            raise ConfigError(f"generator.resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError(
                f"generator.upsample_rates has {len(self.upsample_rates)} entries but "
                f"generator.upsample_kernel_sizes has {len(self.upsample_kernel_sizes)}"
            )
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if int(rate) != rate or rate <= 0 or kernel < rate:
                raise ConfigError(
                    f"generator upsampling layer with rate {rate} and kernel {kernel}: the rate must be "
                    "a positive integer and the kernel at least the rate"
                )
            if rate == 1 and (kernel - rate) % 2:
                raise ConfigError(
                    f"generator upsampling layer with rate 1 and kernel {kernel}: an even kernel cannot "
                    "keep the length at rate 1"
                )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ConfigError(
                "generator.resblock_kernel_sizes and generator.resblock_dilation_sizes "
                "must have the same length"
            )
        if any(k % 2 == 0 for k in self.resblock_kernel_sizes):
            raise ConfigError(
                f"generator.resblock_kernel_sizes must be odd (length-preserving), got {self.resblock_kernel_sizes}"
            )
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise ConfigError(
                f"generator.upsample_initial_channel ({self.upsample_initial_channel}) must be "
                f"divisible by 2^{len(self.upsample_rates)} (channels halve at every upsampling)"
            )
        if self.conv_padding_mode not in ("zeros", "reflect"):
            raise ConfigError(
                f"generator.conv_padding_mode must be 'zeros' or 'reflect', got {self.conv_padding_mode!r}"
            )
        if int(self.inference_padding) < 0:
            raise ConfigError(f"generator.inference_padding cannot be negative, got {self.inference_padding}")

    def upsample_padding(self, index: int) -> tuple[int, int]:
        """(padding, output_padding) of upsampling layer `index`: exactly rate x the input length."""
        rate, kernel = self.upsample_rates[index], self.upsample_kernel_sizes[index]
        return (kernel - rate + 1) // 2, (kernel - rate) % 2

    @property
    def total_upsampling(self) -> int:
        return math.prod(self.upsample_rates)


@dataclass
class DiscriminatorConfig:
    """Multi-period periods and multi-scale depth (paper defaults).

    `scale_pool_padding`: the padding of the multi-scale discriminator's
    AvgPool1d(4, 2) between scales: 2 in the authors' code, 1 in NVIDIA's.
    """

    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    num_scales: int = 3
    scale_pool_padding: int = 2

    def validate(self) -> None:
        if not self.periods or any(p < 1 for p in self.periods):
            raise ConfigError(f"discriminator.periods must be positive integers, got {self.periods}")
        if self.num_scales < 1:
            raise ConfigError(f"discriminator.num_scales must be at least 1, got {self.num_scales}")
        if self.scale_pool_padding not in (0, 1, 2):
            raise ConfigError(
                "discriminator.scale_pool_padding must be 0, 1 or 2 (at most half the pooling kernel of 4): "
                f"2 is the authors', 1 NVIDIA's; got {self.scale_pool_padding}"
            )


@dataclass
class TrainingConfig:
    """Optimisation recipe. Defaults are the authors' (batch 16 in total).

    `batch_size` is the total per optimiser step: it is split over every device
    of every node and over `accumulate_grad_batches` micro-batches, so the same
    recipe means the same optimisation on a laptop or on many GPUs.
    """

    batch_size: int = 16
    segment_size: int = 8192
    learning_rate: float = 2e-4
    adam_b1: float = 0.8
    adam_b2: float = 0.99
    lr_decay: float = 0.999  # per epoch, as the authors' ExponentialLR
    seed: int = 1234
    num_workers: int = 4
    # ---- how the run is carried out -------------------------------------------
    accumulate_grad_batches: int = 1
    precision: str = "32"  # "32", "16-mixed" (fp16 + loss scaling) or "bf16-mixed"
    fp32_grouped_convs: bool = False  # NVIDIA's --no_amp_grouped_conv (mixed precision only)
    tf32: bool = True  # TF32 matmuls/convolutions on Ampere and newer GPUs
    ema_decay: float = 0.0  # > 0: keep an EMA of the generator, used for validation and export
    max_steps: Optional[int] = None  # None: no step limit
    max_epochs: Optional[int] = 3100  # the authors' --training_epochs; None: no epoch limit
    log_every_n_steps: int = 100  # the authors' summary_interval
    val_every_n_steps: int = 1000  # the authors' validation_interval
    checkpoint_every_n_steps: int = 5000  # the authors' checkpoint_interval
    keep_checkpoints: int = 3
    val_audio_samples: int = 4  # validation clips logged as audio and spectrogram images
    max_consecutive_nonfinite: int = 25  # stop when the loss is NaN/inf this many steps in a row
    finetune_lr_factor: float = 1.0  # NVIDIA's --fine_tune_lr_factor
    metrics_every_n_val: int = 0  # > 0: PESQ/STOI on validation every n-th validation (slow)
    discriminator_channel_divisor: int = 1  # > 1 narrows the discriminators: tests/CI only

    def validate(self, audio: AudioConfig) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"training.batch_size must be at least 1, got {self.batch_size}")
        if self.segment_size <= 0 or self.segment_size % audio.hop_length:
            raise ConfigError(
                f"training.segment_size ({self.segment_size}) must be a positive multiple of "
                f"audio.hop_length ({audio.hop_length})"
            )
        # YAML reads `precision: 32` as a number; "16"/"bf16" are common short forms
        self.precision = {"16": "16-mixed", "bf16": "bf16-mixed"}.get(str(self.precision), str(self.precision))
        if self.precision not in TRAINING_PRECISIONS:
            raise ConfigError(
                f"training.precision must be one of {list(TRAINING_PRECISIONS)}, got {self.precision!r}"
            )
        for name in ("accumulate_grad_batches", "log_every_n_steps", "val_every_n_steps",
                     "checkpoint_every_n_steps", "keep_checkpoints", "max_consecutive_nonfinite"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"training.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "max_epochs"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"training.{name} must be at least 1 or null (no limit), got {value}")
        if self.batch_size % self.accumulate_grad_batches:
            raise ConfigError(
                f"training.batch_size ({self.batch_size}) must be divisible by "
                f"training.accumulate_grad_batches ({self.accumulate_grad_batches})"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"training.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"training.lr_decay must lie in (0, 1], got {self.lr_decay}")
        for name in ("learning_rate", "finetune_lr_factor"):
            value = getattr(self, name)  # NaN fails the comparison too; YAML reads 2e-4 as a string
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < math.inf:
                raise ConfigError(f"training.{name} must be a positive finite number, got {value!r}")
        if self.val_audio_samples < 0 or self.metrics_every_n_val < 0 or self.num_workers < 0:
            raise ConfigError(
                "training.val_audio_samples, training.metrics_every_n_val and training.num_workers "
                "cannot be negative"
            )
        if self.discriminator_channel_divisor not in (1, 2, 4, 8, 16):
            raise ConfigError(
                "training.discriminator_channel_divisor must be 1 (the paper's discriminators) or "
                f"2, 4, 8, 16 (narrow ones for tests), got {self.discriminator_channel_divisor}"
            )


TRAINING_PRECISIONS = ("32", "16-mixed", "bf16-mixed")


@dataclass
class HiFiGANConfig:
    """Everything that defines a HiFi-GAN model and how it is trained."""

    name: str = "v1"
    audio: AudioConfig = field(default_factory=AudioConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def validate(self) -> "HiFiGANConfig":
        self.audio.validate()
        self.generator.validate()
        self.discriminator.validate()
        if self.generator.total_upsampling != self.audio.hop_length:
            rates = " x ".join(str(r) for r in self.generator.upsample_rates)
            raise ConfigError(
                f"generator.upsample_rates multiply to {rates} = {self.generator.total_upsampling}, "
                f"but audio.hop_length is {self.audio.hop_length}: the generator must turn one mel "
                "frame into exactly one hop of samples"
            )
        self.training.validate(self.audio)
        return self

    # ---- dictionary / file forms -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "HiFiGANConfig":
        data = dict(data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
        sections = {
            "audio": AudioConfig,
            "generator": GeneratorConfig,
            "discriminator": DiscriminatorConfig,
            "training": TrainingConfig,
        }
        kwargs: dict[str, Any] = {}
        if "name" in data:
            kwargs["name"] = str(data["name"])
        for key, section_cls in sections.items():
            kwargs[key] = _section_from_dict(section_cls, data.get(key) or {}, f"{source}: {key}")
        return cls(**kwargs).validate()

    def save(self, path: str | Path) -> None:
        path = Path(path)
        text = _dump(self.to_dict(), path.suffix)
        path.write_text(text)

    @classmethod
    def load(cls, path: str | Path) -> "HiFiGANConfig":
        """Read a recipe file (YAML or JSON) in our layout, or an authors' config.json."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # parse errors of either format
            raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        if is_original_config(data):
            return cls.from_original(data, name=path.stem)
        return cls.from_dict(data, source=str(path))

    # ---- the authors' flat config.json ------------------------------------------
    @classmethod
    def from_original(cls, data: dict[str, Any], name: str = "original") -> "HiFiGANConfig":
        """Build from the authors' flat config.json (config_v1.json and friends).

        A flat file with only the generator's keys (NVIDIA's `--hifigan-config`
        JSON) gets the authors' 22.05 kHz audio settings.
        """
        try:
            audio = AudioConfig() if "sampling_rate" not in data and "hop_size" not in data else AudioConfig(
                sampling_rate=int(data["sampling_rate"]),
                n_fft=int(data["n_fft"]),
                hop_length=int(data["hop_size"]),
                win_length=int(data["win_size"]),
                n_mels=int(data["num_mels"]),
                fmin=float(data["fmin"]),
                fmax=None if data.get("fmax") is None else float(data["fmax"]),
                fmax_for_loss=(
                    None if data.get("fmax_for_loss") is None else float(data["fmax_for_loss"])
                ),
            )
            generator = GeneratorConfig(
                resblock=str(data["resblock"]),
                upsample_rates=list(data["upsample_rates"]),
                upsample_kernel_sizes=list(data["upsample_kernel_sizes"]),
                upsample_initial_channel=int(data["upsample_initial_channel"]),
                resblock_kernel_sizes=list(data["resblock_kernel_sizes"]),
                resblock_dilation_sizes=[list(d) for d in data["resblock_dilation_sizes"]],
            )
        except KeyError as exc:
            raise ConfigError(f"{name}: the authors' config is missing key {exc.args[0]!r}") from None
        training = TrainingConfig(
            batch_size=int(data.get("batch_size", 16)),
            segment_size=int(data.get("segment_size", 8192)),
            learning_rate=float(data.get("learning_rate", 2e-4)),
            adam_b1=float(data.get("adam_b1", 0.8)),
            adam_b2=float(data.get("adam_b2", 0.99)),
            lr_decay=float(data.get("lr_decay", 0.999)),
            seed=int(data.get("seed", 1234)),
            num_workers=int(data.get("num_workers", 4)),
        )
        return cls(name=name, audio=audio, generator=generator, training=training).validate()


def is_original_config(data: dict[str, Any]) -> bool:
    """The authors' config is flat: it has `upsample_rates` at the top level."""
    return "upsample_rates" in data and "generator" not in data


def _section_from_dict(section_cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(section_cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known keys are {sorted(names)}")
    try:
        return section_cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _dump(data: dict[str, Any], suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(data, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


# ---- presets: the one registry of named configs ----------------------------------------
# Every named config (the paper's v1/v2/v3, NVIDIA's recipe, other toolkits' architectures and
# sample rates) is a YAML file in the package's `recipes/` folder: adding one is adding a file.

def _preset_folder():
    from importlib import resources

    return resources.files("hifigan").joinpath("recipes")


def preset_names() -> list[str]:
    """Names of the shipped presets and recipes (`v1`, `v2`, `v3`, `v1-nvidia`, ...)."""
    return sorted(p.name[: -len(".yaml")] for p in _preset_folder().iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of a shipped preset, to read or copy."""
    entry = _preset_folder().joinpath(f"{name}.yaml")
    if not entry.is_file():
        raise ConfigError(f"unknown preset {name!r}; presets are {', '.join(preset_names())}")
    return Path(str(entry))


@lru_cache(maxsize=None)
def _preset_data(name: str) -> str:
    return json.dumps(HiFiGANConfig.load(preset_path(name)).to_dict())


def preset(name: str) -> HiFiGANConfig:
    """A fresh copy of a named preset (see `preset_names()`)."""
    return HiFiGANConfig.from_dict(json.loads(_preset_data(name)), source=f"preset {name}")


def resolve_config(config: "str | Path | HiFiGANConfig | dict | None") -> HiFiGANConfig:
    """Accept a preset name, a config file path (ours or the authors' config.json), a dict or a config."""
    if config is None:
        return preset("v1")
    if isinstance(config, HiFiGANConfig):
        return config.validate()
    if isinstance(config, dict):
        if is_original_config(config):
            return HiFiGANConfig.from_original(config)
        return HiFiGANConfig.from_dict(config)
    text = str(config)
    if text in preset_names():
        return preset(text)
    path = Path(text)
    if path.is_file():
        return HiFiGANConfig.load(path)
    raise ConfigError(
        f"config {text!r} is neither a preset ({', '.join(preset_names())}) nor an existing file"
    )


def with_generator_channels(config: HiFiGANConfig, channels: int) -> HiFiGANConfig:
    """Copy of `config` with a different generator width (tiny models for tests/CI)."""
    out = HiFiGANConfig.from_dict(config.to_dict())
    out.generator.upsample_initial_channel = channels
    return out.validate()

