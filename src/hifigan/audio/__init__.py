from .mel import MelSpectrogram, mel_filterbank

__all__ = ["MelSpectrogram", "mel_filterbank"]
