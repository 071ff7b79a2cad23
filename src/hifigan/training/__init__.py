"""Training on PyTorch Lightning: the GAN module, `train()`, `finetune()`, checkpoints, recipes, bench.

`import hifigan.training` loads Lightning; the rest of the package does not need it.
"""
from .checkpointing import AtomicCheckpointIO, RunCheckpoints, latest_checkpoint, list_checkpoints
from .module import HiFiGANModule, NonFiniteLossError, build_discriminators
from .recipes import list_recipes, load_recipe, recipe_path
from .run import (
    InitialWeights,
    RunOptions,
    TrainResult,
    apply_overrides,
    is_global_zero,
    per_device_batch,
    train,
)

__all__ = [
    "AtomicCheckpointIO",
    "HiFiGANModule",
    "InitialWeights",
    "NonFiniteLossError",
    "RunCheckpoints",
    "RunOptions",
    "TrainResult",
    "apply_overrides",
    "build_discriminators",
    "is_global_zero",
    "latest_checkpoint",
    "list_checkpoints",
    "list_recipes",
    "load_recipe",
    "per_device_batch",
    "recipe_path",
    "train",
]
