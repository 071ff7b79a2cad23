"""The one mel-file reader (audio/mel_files.py): every accepted layout, every bad file as one line.

`hifigan synthesize` (inference/inputs.py `load_mel_file`) and `finetune --mels`
(data/pairs.py `load_mel`, `mel_frame_count`) read mel files through it, so they
accept the same files and refuse the others with the same reason.
"""
from __future__ import annotations

import ast
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hifigan.audio import mel_files
from hifigan.audio.mel_files import MelFileError, MelFileWarning, mel_file_frames, read_mel
from hifigan.data.pairs import load_mel, mel_frame_count
from hifigan.data.probe import UnusableAudio
from hifigan.errors import DataError
from hifigan.inference.inputs import load_mel_file

from helpers import write_mel

N_MELS = 80
FRAMES = 12


def reference() -> np.ndarray:
    """A natural-log-looking mel [80, 12] whose values say where they came from."""
    band = np.arange(N_MELS, dtype=np.float32)[:, None]
    frame = np.arange(FRAMES, dtype=np.float32)[None, :]
    return -10.0 + 0.1 * band + 0.01 * frame




LAYOUTS = {
    "bands-first.npy": lambda m: m,
    "batched.npy": lambda m: m[None],
    "transposed.npy": lambda m: m.T.copy(),                        # NVIDIA's [frames, n_mels]
    "fortran.npy": lambda m: np.asfortranarray(m),
    "float16.npy": lambda m: m.astype(np.float16),
    "float64.npy": lambda m: m.astype(np.float64),
    "tensor.pt": lambda m: torch.from_numpy(m),
    "batched.pt": lambda m: torch.from_numpy(m)[None],
    "transposed.pt": lambda m: torch.from_numpy(m.T.copy()),
    "dict-mel.pt": lambda m: {"mel": torch.from_numpy(m), "text": "hello", "frames": 12},
    "dict-one.pt": lambda m: {"spectrogram": torch.from_numpy(m)},
    "dict-mel-and-more.pt": lambda m: {"mel": torch.from_numpy(m), "pitch": torch.zeros(12)},
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_accepted_layout_reads_as_bands_by_frames(tmp_path, name):
    mel = reference()
    path = write_mel(tmp_path / name, LAYOUTS[name](mel))
    tolerance = 1e-2 if "float16" in name else 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no layout warning for an unambiguous mel
        got = read_mel(path, N_MELS)
        frames = mel_file_frames(path, N_MELS)
    assert got.dtype == torch.float32 and got.shape == (N_MELS, FRAMES) and got.is_contiguous()
    torch.testing.assert_close(got, torch.from_numpy(mel), atol=tolerance, rtol=0)
    assert frames == FRAMES


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_synthesis_and_finetuning_accept_the_same_files(tmp_path, name):
    path = write_mel(tmp_path / name, LAYOUTS[name](reference()))
    from hifigan.config import AudioConfig

    synth = load_mel_file(path, AudioConfig())
    pairs = load_mel(path, N_MELS)
    torch.testing.assert_close(synth, pairs, atol=0, rtol=0)
    assert mel_frame_count(path, N_MELS) == FRAMES


def test_frame_count_of_an_npy_reads_only_the_header(tmp_path, monkeypatch):
    path = write_mel(tmp_path / "m.npy", reference().T.copy())

    def refuse(*args, **kwargs):
        raise AssertionError("mel_file_frames loaded the array")

    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(np, "fromfile", refuse)
    assert mel_file_frames(path, N_MELS) == FRAMES
    assert mel_frame_count(path, N_MELS) == FRAMES


def absurd_header(path: Path, shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"\0" * 20) -> Path:
    """An .npy whose header claims `shape` but which holds only `data`."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(data)
    return path


BAD_FILES = {
    "empty.npy": (b"", "empty file"),
    "empty.pt": (b"", "empty file"),
    "random.npy": (bytes(range(7, 250)), "not a .npy/.pt file"),
    "random.pt": (b"this is not a tensor at all", "not a .npy/.pt file"),
    "bands.npy": (np.zeros((60, 20), np.float32), "no axis of 80 bands"),
    "vector.npy": (np.zeros(80, np.float32), "expected a mel [n_mels, frames]"),
    "cube.npy": (np.zeros((2, 80, 10), np.float32), "expected a mel [n_mels, frames]"),
    "no-frames.npy": (np.zeros((80, 0), np.float32), "no frames"),
    "no-frames-transposed.npy": (np.zeros((0, 80), np.float32), "no frames"),
    "no-frames-batched.pt": (torch.zeros(1, 80, 0), "no frames"),
    "complex.npy": (np.zeros((80, 10), np.complex64), "real numbers"),
    "bool.npy": (np.zeros((80, 10), bool), "real numbers"),
    "strings.npy": (np.array([["a"] * 10] * 80), "real numbers"),
    "complex.pt": (torch.zeros(80, 10, dtype=torch.complex64), "real numbers"),
    "bool.pt": (torch.zeros(80, 10, dtype=torch.bool), "real numbers"),
    "sparse.pt": (torch.zeros(80, 10).to_sparse(), "sparse"),
    "list.pt": ([1.0, 2.0], "found list"),
    "text.pt": ("a mel", "found str"),
    "two-tensors.pt": ({"a": torch.zeros(80, 3), "b": torch.zeros(80, 3)}, "expected a tensor or a dict with a 'mel'"),
    "mel-not-tensor.pt": ({"mel": [1, 2, 3]}, "expected a tensor or a dict with a 'mel'"),
    "numpy-inside.pt": (np.zeros((80, 10), np.float32), "Python objects"),
    "nan.npy": (np.where(np.eye(80, 20) > 0, np.nan, -5.0).astype(np.float32), "20 NaN or infinite values"),
    "inf.pt": (torch.full((80, 10), -5.0).index_fill_(1, torch.tensor([3]), float("inf")), "80 NaN or infinite"),
}


def assert_one_clean_line(message: str, path: Path) -> None:
    assert str(path) in message
    assert "\n" not in message and "\x1b" not in message and "Traceback" not in message


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_one_line_data_errors_naming_the_file(tmp_path, name):
    content, expected = BAD_FILES[name]
    path = write_mel(tmp_path / name, content)
    with pytest.raises(MelFileError) as caught:
        read_mel(path, N_MELS)
    message = str(caught.value)
    assert isinstance(caught.value, DataError) and expected in message, message
    assert_one_clean_line(message, path)
    assert "pickled data" not in message and "weights_only" not in message
    assert caught.value.path == path and caught.value.reason in message
    # fine-tuning says the same, as UnusableAudio (per-file reports)
    with pytest.raises(UnusableAudio) as wrapped:
        load_mel(path, N_MELS)
    assert wrapped.value.reason == caught.value.reason and wrapped.value.path == path


def test_a_quantized_tensor_is_refused(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates quantized tensors
        quantized = torch.quantize_per_tensor(torch.zeros(80, 10), 0.1, 0, torch.quint8)
    path = write_mel(tmp_path / "q.pt", quantized)
    with pytest.raises(MelFileError, match="quantized") as caught:
        read_mel(path, N_MELS)
    assert_one_clean_line(str(caught.value), path)


def test_an_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"evil": 1}] * 80, dtype=object), allow_pickle=True)
    for read in (read_mel, mel_file_frames):
        with pytest.raises(MelFileError, match="object array") as caught:
            read(path, N_MELS)
        assert_one_clean_line(str(caught.value), path)
        assert "pickled data" not in str(caught.value)


@pytest.mark.parametrize("read", [read_mel, mel_file_frames])
def test_a_header_that_does_not_match_the_file_size_is_refused_before_loading(tmp_path, monkeypatch, read):
    path = absurd_header(tmp_path / "absurd.npy", (80, 100_000_000_000))

    def refuse(*args, **kwargs):
        raise AssertionError("the array was loaded")

    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(np, "fromfile", refuse)
    with pytest.raises(MelFileError, match="does not match the file's size") as caught:
        read(path, N_MELS)
    assert_one_clean_line(str(caught.value), path)
    assert "80, 100000000000" in str(caught.value)


def test_a_truncated_npy_is_refused(tmp_path):
    path = write_mel(tmp_path / "cut.npy", reference())
    path.write_bytes(path.read_bytes()[:-7])
    for read in (read_mel, mel_file_frames):
        with pytest.raises(MelFileError, match="does not match the file's size"):
            read(path, N_MELS)


def test_a_malformed_npy_header_is_one_line(tmp_path):
    path = tmp_path / "header.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': nonsense\n")
    with pytest.raises(MelFileError, match="not a readable .npy file") as caught:
        read_mel(path, N_MELS)
    assert_one_clean_line(str(caught.value), path)


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_a_square_mel_is_read_bands_first_with_a_warning(tmp_path, suffix):
    square = np.arange(80 * 80, dtype=np.float32).reshape(80, 80) / 1000 - 10
    path = write_mel(tmp_path / f"square{suffix}", square if suffix == ".npy" else torch.from_numpy(square))
    with pytest.warns(MelFileWarning, match=r"80 x 80.*axis 0 as the 80 bands") as caught:
        mel = read_mel(path, N_MELS)
    torch.testing.assert_close(mel, torch.from_numpy(square), atol=0, rtol=0)  # not transposed
    assert str(path) in str(caught[0].message)
    with pytest.warns(MelFileWarning):
        assert mel_file_frames(path, N_MELS) == 80


def test_a_missing_file_and_another_suffix(tmp_path):
    with pytest.raises(MelFileError, match="file not found"):
        read_mel(tmp_path / "missing.npy", N_MELS)
    with pytest.raises(MelFileError, match="expected a .npy or .pt mel file"):
        read_mel(write_mel(tmp_path / "mel.txt", b"1 2 3"), N_MELS)


def test_a_legacy_torch_file_is_read(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save(torch.from_numpy(reference()), path, _use_new_zipfile_serialization=False)
    torch.testing.assert_close(read_mel(path, N_MELS), torch.from_numpy(reference()), atol=0, rtol=0)


def test_control_characters_never_reach_a_message(tmp_path):
    path = write_mel(tmp_path / "bell\x1b[31m.npy", b"")
    with pytest.raises(MelFileError) as caught:
        read_mel(path, N_MELS)
    assert "\x1b" not in str(caught.value) and "empty file" in str(caught.value)


def test_the_error_survives_pickling_for_dataloader_workers(tmp_path):
    path = write_mel(tmp_path / "empty.npy", b"")
    with pytest.raises(MelFileError) as caught:
        read_mel(path, N_MELS)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value) and copy.path == caught.value.path


def test_the_reader_stays_in_the_audio_layer():
    tree = ast.parse(Path(mel_files.__file__).read_text())
    ours = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    absolute = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level]
    absolute += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert set(ours) <= {"errors"}, ours  # ..errors only: nothing from inference/, data/ or above
    assert not [m for m in absolute if m.startswith("hifigan")], absolute
