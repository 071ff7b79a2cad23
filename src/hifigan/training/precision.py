"""Numeric settings of a run: TF32, and NVIDIA's fp32 grouped convolutions under AMP.

NVIDIA's recipe runs the grouped convolutions of the scale discriminator
outside autocast (`--no_amp_grouped_conv`), because fp16 grouped
convolutions are slow on Ampere; the result is cast back to the autocast
dtype so the rest of the network is unchanged.
"""
from __future__ import annotations

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
