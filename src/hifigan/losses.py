"""HiFi-GAN losses: least-squares adversarial, feature matching, mel L1.

All are computed in float32 so that mixed-precision training does not lose
the small differences feature matching depends on. The generator objective is
`adversarial + FEATURE_WEIGHT * feature + MEL_WEIGHT * mel` (paper, eq. 6).

Sums run term by term in the authors' order (their `loss += ...` loops), so
that the loss values, not only their gradients, are the authors' to the bit:
floating-point addition is not associative, and `torch.stack(...).sum()`
may round differently.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
import torch.nn.functional as F

FEATURE_WEIGHT = 2.0
MEL_WEIGHT = 45.0


def ordered_sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """t0 + t1 + ... left to right, as the authors' `loss = 0; loss += t` loops (0 + t0 is t0 exactly)."""
    total: Optional[torch.Tensor] = None
    for term in terms:
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no loss terms to sum")
    return total


def generator_objective(adversarial: Sequence[torch.Tensor], feature: Sequence[torch.Tensor],
                        mel_l1: torch.Tensor) -> torch.Tensor:
    """sum adversarial + FEATURE_WEIGHT * sum feature + MEL_WEIGHT * mel, added term by term in the given order.

    With the terms per discriminator in the authors' order (msd, then mpd) this is their
    `loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel` to the bit (their feature_loss
    returns the sum x 2, their mel term is l1 x 45).
    """
    return ordered_sum([*adversarial, *(FEATURE_WEIGHT * f for f in feature), MEL_WEIGHT * mel_l1])


def discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """sum_k E[(D_k(x) - 1)^2] + E[D_k(G(s))^2]; also the per-discriminator terms."""
    real_terms = [torch.mean((1.0 - r.float()) ** 2) for r in real_logits]
    fake_terms = [torch.mean(g.float() ** 2) for g in fake_logits]
    total = ordered_sum(r + g for r, g in zip(real_terms, fake_terms))  # the authors' loss += (r + g)
    return total, real_terms, fake_terms


def generator_adversarial_loss(
    fake_logits: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """sum_k E[(D_k(G(s)) - 1)^2]; also the per-discriminator terms."""
    terms = [torch.mean((1.0 - g.float()) ** 2) for g in fake_logits]
    return ordered_sum(terms), terms


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
    return ordered_sum(terms)


def mel_loss(mel_real: torch.Tensor, mel_fake: torch.Tensor) -> torch.Tensor:
    """Unweighted L1 between log-mels (the value the authors report for validation)."""
    return F.l1_loss(mel_fake.float(), mel_real.float())
