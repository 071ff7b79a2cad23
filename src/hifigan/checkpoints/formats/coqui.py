"""Placeholder until the importer lands."""
from __future__ import annotations

from .base import CheckpointFormat

FORMAT = CheckpointFormat(name="coqui", toolkit="coqui", files="", detect=lambda source: False, read=None)
