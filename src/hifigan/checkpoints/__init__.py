from .convert import load_discriminators, load_generator, load_state_checked
from ..errors import CheckpointError
from .io import atomic_torch_save, read_checkpoint, save_generator

__all__ = [
    "CheckpointError",
    "atomic_torch_save",
    "load_discriminators",
    "load_generator",
    "load_state_checked",
    "read_checkpoint",
    "save_generator",
]
