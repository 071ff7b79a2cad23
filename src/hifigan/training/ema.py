"""Exponential moving average of the generator weights.

The average lives in a frozen copy of the generator (`generator_ema` of the
LightningModule), so it is saved and restored with the checkpoint, exported
for inference and used for validation, with no extra file format.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy whose parameters take no gradient (DDP ignores them)."""
    twin = copy.deepcopy(module)
    for parameter in twin.parameters():
        parameter.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(average: nn.Module, current: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * current, parameter by parameter."""
    avg = [p for _, p in sorted(average.named_parameters())]
    cur = [p.detach() for _, p in sorted(current.named_parameters())]
    if len(avg) != len(cur):
        raise RuntimeError("EMA and generator have different parameters")
    torch._foreach_lerp_(avg, cur, 1.0 - decay)
