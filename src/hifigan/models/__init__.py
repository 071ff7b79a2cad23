from .discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
)
from .generator import Generator, ResBlock1, ResBlock2

__all__ = [
    "Generator",
    "ResBlock1",
    "ResBlock2",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "PeriodDiscriminator",
    "ScaleDiscriminator",
]
