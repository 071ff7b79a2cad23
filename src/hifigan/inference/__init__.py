from .vocoder import Vocoder

__all__ = ["Vocoder"]
