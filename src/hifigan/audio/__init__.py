from .io import AUDIO_SUFFIXES, LoadedAudio, expand_paths, find_audio_files, load_audio, resample, save_audio
from .mel import MelSpectrogram, mel_filterbank
from .mel_files import MEL_SUFFIXES, MelFileError, MelFileWarning, mel_file_frames, read_mel

__all__ = [
    "AUDIO_SUFFIXES",
    "LoadedAudio",
    "MEL_SUFFIXES",
    "MelFileError",
    "MelFileWarning",
    "MelSpectrogram",
    "expand_paths",
    "find_audio_files",
    "load_audio",
    "mel_file_frames",
    "mel_filterbank",
    "read_mel",
    "resample",
    "save_audio",
]
