"""Objective evaluation: metrics (`hifigan.metrics`), the Griffin-Lim floor, `evaluate`."""
from .evaluate import (
    ClipResult,
    EvaluationReport,
    EvaluationSettings,
    MetricSummary,
    SystemScores,
    evaluate,
    expand_audio_arguments,
    score_clip,
    summarize,
)
from .griffin_lim import GriffinLimSettings, griffin_lim
from .metrics import MetricSkipped

__all__ = [
    "ClipResult",
    "EvaluationReport",
    "EvaluationSettings",
    "GriffinLimSettings",
    "MetricSkipped",
    "MetricSummary",
    "SystemScores",
    "evaluate",
    "expand_audio_arguments",
    "griffin_lim",
    "score_clip",
    "summarize",
]
