"""HiFi-GAN losses: least-squares adversarial, feature matching, mel L1.

All are computed in float32 so that mixed-precision training does not lose
the small differences feature matching depends on. The generator objective is
`adversarial + FEATURE_WEIGHT * feature + MEL_WEIGHT * mel` (paper, eq. 6).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

FEATURE_WEIGHT = 2.0
MEL_WEIGHT = 45.0


def discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """sum_k E[(D_k(x) - 1)^2] + E[D_k(G(s))^2]; also the per-discriminator terms."""
    real_terms = [torch.mean((1.0 - r.float()) ** 2) for r in real_logits]
    fake_terms = [torch.mean(g.float() ** 2) for g in fake_logits]
    total = torch.stack(real_terms).sum() + torch.stack(fake_terms).sum()
    return total, real_terms, fake_terms


def generator_adversarial_loss(
    fake_logits: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """sum_k E[(D_k(G(s)) - 1)^2]; also the per-discriminator terms."""
    terms = [torch.mean((1.0 - g.float()) ** 2) for g in fake_logits]
    return torch.stack(terms).sum(), terms


def feature_matching_loss(
    real_fmaps: Sequence[Sequence[torch.Tensor]], fake_fmaps: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Unweighted sum over discriminators and layers of the mean L1 between feature maps.

    The real features are targets, so no gradient flows into them.
    """
    terms = [
        torch.mean(torch.abs(r.detach().float() - g.float()))
        for fmap_r, fmap_g in zip(real_fmaps, fake_fmaps)
        for r, g in zip(fmap_r, fmap_g)
    ]
    return torch.stack(terms).sum()


def mel_loss(mel_real: torch.Tensor, mel_fake: torch.Tensor) -> torch.Tensor:
    """Unweighted L1 between log-mels (the value the authors report for validation)."""
    return F.l1_loss(mel_fake.float(), mel_real.float())
