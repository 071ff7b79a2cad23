"""HiFi-GAN neural vocoder: faithful V1/V2/V3, Lightning training, fast synthesis."""
from .audio import MelSpectrogram
from .checkpoints import CheckpointError, load_discriminators, load_generator, save_generator
from .config import (
    AudioConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    HiFiGANConfig,
    TrainingConfig,
    preset,
)
from .errors import ConfigError, DataError, HiFiGANError
from .losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss, mel_loss
from .models import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator

__version__ = "0.1.0"

# Heavier parts load on first use, so `import hifigan` stays quick.
_LAZY = {
    "Vocoder": ("hifigan.inference", "Vocoder"),
    "metrics": ("hifigan.evaluation.metrics", None),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'hifigan' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)

__all__ = [
    "AudioConfig",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "HiFiGANError",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "HiFiGANConfig",
    "MelSpectrogram",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "TrainingConfig",
    "Vocoder",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "load_discriminators",
    "load_generator",
    "mel_loss",
    "metrics",
    "preset",
    "save_generator",
]
