from .io import AUDIO_SUFFIXES, LoadedAudio, find_audio_files, load_audio, resample, save_audio
from .mel import MelSpectrogram, mel_filterbank

__all__ = [
    "AUDIO_SUFFIXES",
    "LoadedAudio",
    "MelSpectrogram",
    "find_audio_files",
    "load_audio",
    "mel_filterbank",
    "resample",
    "save_audio",
]
