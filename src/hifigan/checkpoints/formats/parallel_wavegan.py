"""Placeholder until the importer lands."""
from __future__ import annotations

from .base import CheckpointFormat

FORMAT = CheckpointFormat(name="parallel_wavegan", toolkit="parallel_wavegan", files="", detect=lambda source: False, read=None)
