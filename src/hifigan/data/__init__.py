"""The data pipeline: corpus layouts, splits, datasets, fine-tuning pairs, DataModule, prepare.

`load_splits(data)` turns any accepted layout into training/validation file
lists; `HiFiGANDataModule(config, splits)` serves the batches; `prepare_corpus`
(behind `hifigan prepare`) checks a corpus and writes its lists.
"""
from .dataset import VocoderDataset, collate, crop_or_pad, crop_pair, peak_normalise
from .lists import DataSplits, load_splits, read_corpus, read_file_list, seeded_split, write_file_list
from .pairs import align_pair, load_mel
from .probe import AudioHeader, FileReport, UnusableAudio, inspect_file, read_header

# Lightning (seconds to import) loads only when the DataModule is asked for.
_LAZY = {
    "DataReport": "hifigan.data.module",
    "FailureTracker": "hifigan.data.module",
    "HiFiGANDataModule": "hifigan.data.module",
    "SkippedFileWarning": "hifigan.data.module",
    "CorpusReport": "hifigan.data.prepare",
    "PrepareResult": "hifigan.data.prepare",
    "inspect_corpus": "hifigan.data.prepare",
    "prepare_corpus": "hifigan.data.prepare",
    "download_ljspeech": "hifigan.data.ljspeech",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'hifigan.data' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = [
    "AudioHeader",
    "CorpusReport",
    "DataReport",
    "DataSplits",
    "FailureTracker",
    "FileReport",
    "HiFiGANDataModule",
    "PrepareResult",
    "SkippedFileWarning",
    "UnusableAudio",
    "VocoderDataset",
    "align_pair",
    "collate",
    "crop_or_pad",
    "crop_pair",
    "download_ljspeech",
    "inspect_corpus",
    "inspect_file",
    "load_mel",
    "load_splits",
    "peak_normalise",
    "prepare_corpus",
    "read_corpus",
    "read_file_list",
    "read_header",
    "seeded_split",
    "write_file_list",
]
