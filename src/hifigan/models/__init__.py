from .discriminators import (
    DISCRIMINATORS,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
    SpectralNorm,
    build_discriminators,
    spectral_norm,
    summation_order,
)
from .generator import Generator, ResBlock1, ResBlock2

__all__ = [
    "DISCRIMINATORS",
    "Generator",
    "ResBlock1",
    "ResBlock2",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
    "SpectralNorm",
    "build_discriminators",
    "spectral_norm",
    "summation_order",
]
