"""Numeric settings of a run: TF32, NVIDIA's fp32 grouped convolutions under AMP, and fp16 loss scaling.

NVIDIA's recipe runs the grouped convolutions of the scale discriminator
outside autocast (`--no_amp_grouped_conv`), because fp16 grouped
convolutions are slow on Ampere; the result is cast back to the autocast
dtype so the rest of the network is unchanged.

fp16 training scales each side's loss with its own dynamic loss scaler, as
NVIDIA's train.py (`scaler_g`, `scaler_d`): an overflow in the
discriminator's gradients halves the discriminator's scale only.
`LossScalers` gives Lightning's fp16 plugin (which has one GradScaler) the
scaler of the optimiser about to run backward and step.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..models import MultiScaleDiscriminator

# Indices, in each ScaleDiscriminator.convs, of the layers NVIDIA keeps in fp32:
# the four convolutions with 16 groups (DeepLearningExamples HiFiGAN models.py, NoAMPConv1d).
FP32_SCALE_LAYERS = (2, 3, 4, 5)


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions (used only on Ampere and newer GPUs)."""
    mode = "tf32" if enabled else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.fp32_precision = mode
    else:  # older torch
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no argument, CUDA only
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def _run_in_fp32(module: nn.Module) -> None:
    inner = module.forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        device_type = x.device.type
        if not _autocast_on(device_type):
            return inner(x)
        with torch.autocast(device_type=device_type, enabled=False):
            return inner(x.float()).to(x.dtype)

    module.forward = forward  # an instance attribute: state_dict keys are unchanged


def keep_grouped_convs_fp32(msd: MultiScaleDiscriminator) -> int:
    """Run the 16-group convolutions of every scale discriminator in fp32; returns how many."""
    count = 0
    for disc in msd.discriminators:
        for index in FP32_SCALE_LAYERS:
            if index < len(disc.convs):
                _run_in_fp32(disc.convs[index])
                count += 1
    return count


class LossScalers:
    """One dynamic loss scaler per optimiser on Lightning's fp16 `MixedPrecision` plugin.

    The plugin scales the loss in `manual_backward` and unscales, steps and
    updates in `optimizer.step()` with its `scaler`; `use(side)` points that
    at the side's own scaler first. The generator's is the plugin's original
    scaler (so the checkpoint's "MixedPrecision" entry, written by Lightning,
    still holds a valid scaler state); the discriminator's is a second one
    with the same settings. `state_dict()` holds both, for checkpoints.
    """

    SIDES = ("generator", "discriminator")

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        first = plugin.scaler
        second = torch.amp.GradScaler(device=getattr(plugin, "device", "cuda"), enabled=first.is_enabled())
        second.load_state_dict(first.state_dict())  # the same initial scale and growth settings
        self.scalers = {"generator": first, "discriminator": second}

    @classmethod
    def attach(cls, plugin: Any) -> Optional["LossScalers"]:
        """Two scalers on `plugin` if it scales losses (fp16), else None (fp32, bf16)."""
        scaler = getattr(plugin, "scaler", None)
        if scaler is None or not hasattr(scaler, "is_enabled") or not scaler.is_enabled():
            return None
        return cls(plugin)

    def use(self, side: str) -> torch.amp.GradScaler:
        """Make `side`'s scaler the plugin's for the next backward and optimizer step."""
        scaler = self.scalers[side]
        self.plugin.scaler = scaler
        return scaler

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {side: self.scalers[side].state_dict() for side in self.SIDES}

    def load_state_dict(self, state: dict[str, dict[str, Any]]) -> None:
        for side in self.SIDES:
            if side in state:
                self.scalers[side].load_state_dict(state[side])

    def share_generator_state(self) -> None:
        """Start the discriminator's scaler where the generator's stands (a checkpoint with one scaler)."""
        self.scalers["discriminator"].load_state_dict(self.scalers["generator"].state_dict())
