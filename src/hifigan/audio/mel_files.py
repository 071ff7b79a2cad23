"""Reading mel files: the one reader behind `hifigan synthesize` and `finetune --mels`.

Accepted files (the same everywhere):

- `.npy` arrays and `.pt` files (`torch.save` of a tensor, or of a dict with a
  'mel' tensor or with exactly one tensor), told apart by their content;
- shaped [n_mels, frames], [1, n_mels, frames] (any leading 1s), or
  [frames, n_mels] (transposed, as NVIDIA's tools save them); a square mel
  (n_mels x n_mels) is read bands-first, with a `MelFileWarning`;
- real numbers (floating or integer), all finite, at least one frame.

An `.npy` header is checked against the file's size before anything is loaded,
so a corrupt header (80 x 10^11 frames) is a one-line error, not an
allocation. `.pt` files load with `weights_only=True` (no code runs). Every
problem is a `MelFileError` (a DataError) that names the file in one line.
This module is the audio layer: it imports nothing from inference/ or data/.
"""
from __future__ import annotations

import math
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch

from ..errors import DataError, first_line

MEL_SUFFIXES = (".npy", ".pt")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
PICKLE_PROTOCOLS = range(2, 6)  # torch.save's legacy format starts with pickle's PROTO opcode
PathLike = Union[str, Path]

_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x1f\x7f]")


class MelFileError(DataError):
    """A mel file that cannot be used; keeps the file and the short reason apart (for reports)."""

    def __init__(self, path: PathLike, reason: str) -> None:
        super().__init__(f"{_display(Path(path))}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (str(self.path), self.reason))


class MelFileWarning(UserWarning):
    """A mel file read with a guess (a square mel whose band axis is ambiguous)."""


@dataclass(frozen=True)
class MelLayout:
    """How a stored shape maps to [n_mels, frames]: leading 1s dropped, then maybe transposed."""

    squeeze: int  # leading singleton axes to drop
    transposed: bool  # stored [frames, n_mels]
    frames: int


def read_mel(path: PathLike, n_mels: int) -> torch.Tensor:
    """A mel file as float32 [n_mels, frames], contiguous and finite; MelFileError otherwise."""
    path = Path(path)
    if _format(path) == "npy":
        with open(path, "rb") as f:
            shape, _ = _npy_header(path, f)
        layout = mel_layout(shape, n_mels, path)  # before loading: a shape that is no mel is never read
        tensor = torch.from_numpy(_load_npy(path))
    else:
        tensor = _tensor_of(path, _load_pt(path))
        layout = mel_layout(tuple(tensor.shape), n_mels, path)
    mel = tensor.reshape(tuple(tensor.shape)[layout.squeeze:])
    mel = (mel.T if layout.transposed else mel).float().contiguous()
    _check_finite(path, mel)
    return mel


def mel_file_frames(path: PathLike, n_mels: int) -> int:
    """Frames of a mel file, by the same rules as `read_mel`; only the header of an .npy is read."""
    path = Path(path)
    if _format(path) != "npy":
        return int(read_mel(path, n_mels).shape[1])
    with open(path, "rb") as f:
        shape, _ = _npy_header(path, f)
    return mel_layout(shape, n_mels, path).frames


def mel_layout(shape: Sequence[int], n_mels: int, path: PathLike) -> MelLayout:
    """The shape rules every reader shares; MelFileError for a shape that is no mel."""
    shape = tuple(int(s) for s in shape)
    squeeze = 0
    while len(shape) - squeeze > 2 and shape[squeeze] == 1:
        squeeze += 1
    core = shape[squeeze:]
    if len(core) != 2:
        raise MelFileError(path, f"expected a mel [n_mels, frames], got shape {shape}")
    if core[0] == n_mels:
        if core[1] == n_mels:
            warnings.warn(
                f"{_display(Path(path))}: the mel is {n_mels} x {n_mels}, so either axis could be the bands; "
                f"read axis 0 as the {n_mels} bands ([n_mels, frames]): transpose the file if it was "
                "saved [frames, n_mels]",
                MelFileWarning,
                stacklevel=3,
            )
        layout = MelLayout(squeeze, False, core[1])
    elif core[1] == n_mels:
        layout = MelLayout(squeeze, True, core[0])
    else:
        raise MelFileError(
            path,
            f"mel of shape {shape} has no axis of {n_mels} bands, the number this model takes "
            "(was it made with other mel settings?)",
        )
    if layout.frames < 1:
        raise MelFileError(path, f"the mel has no frames (shape {shape})")
    return layout


# ---- telling the formats apart -----------------------------------------------------

def _format(path: Path) -> str:
    """'npy' or 'pt' by the file's first bytes (the suffix must be one of ours)."""
    if path.suffix.lower() not in MEL_SUFFIXES:
        raise MelFileError(path, f"expected a .npy or .pt mel file, got {path.suffix or '(no suffix)'}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise MelFileError(path, "file not found") from None
    except OSError as exc:
        raise MelFileError(path, f"cannot read the file ({_clean(exc.strerror or str(exc))})") from None
    if not head:
        raise MelFileError(path, "empty file (0 bytes)")
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGIC) or (len(head) > 1 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS):
        return "pt"
    raise MelFileError(path, "not a .npy/.pt file (neither a numpy array nor a torch.save file)")


# ---- .npy -----------------------------------------------------------------------------

def _npy_header(path: Path, f: Any) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header, checked against the dtype rules and the file's size."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    except Exception as exc:  # numpy parses the header with ast and tokenize: any of their errors
        raise MelFileError(path, f"not a readable .npy file ({_first_line(exc)})") from None
    _check_dtype(path, dtype, "array")
    data = path.stat().st_size - f.tell()
    needed = math.prod(shape) * dtype.itemsize
    if data != needed:
        raise MelFileError(
            path,
            f"the header (shape {tuple(shape)}, {dtype}, {needed} bytes) does not match the file's size "
            f"({data} bytes after the header): the file is truncated or corrupt",
        )
    return tuple(shape), dtype


def _load_npy(path: Path) -> np.ndarray:
    """The array as native float32, once its header has been checked."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise MelFileError(path, f"not a readable .npy file ({_first_line(exc)})") from None
    return np.ascontiguousarray(array, dtype=np.float32)  # also native byte order, which torch needs


def _check_dtype(path: Path, dtype: np.dtype, what: str) -> None:
    if dtype.hasobject:
        raise MelFileError(path, f"an object {what} (pickled Python objects), not numbers: save the mel as floats")
    if dtype.kind not in "fiu":
        raise MelFileError(path, f"a mel must hold real numbers, this {what} is {dtype}")


# ---- .pt ------------------------------------------------------------------------------

def _load_pt(path: Path) -> Any:
    """torch.load with weights_only (tensors and plain containers only), errors in one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notes (TypedStorage, quantized)
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, zipfile.BadZipFile,
            AttributeError, ImportError, TypeError, KeyError, IndexError) as exc:
        text = _clean(str(exc))
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found or "Weights only load failed" in text:
            what = f" ({found.group(1)})" if found else ""
            raise MelFileError(
                path, f"the file holds Python objects{what} besides tensors, which a safe (weights-only) "
                "load refuses: save the mel as a torch tensor",
            ) from None
        raise MelFileError(path, f"not a readable .pt file ({_first_line(exc)})") from None


def _tensor_of(path: Path, data: Any) -> torch.Tensor:
    """The mel tensor of a loaded .pt: itself, dict['mel'], or a dict's only tensor."""
    if isinstance(data, dict):
        tensors = [key for key, value in data.items() if isinstance(value, torch.Tensor)]
        if isinstance(data.get("mel"), torch.Tensor):
            data = data["mel"]
        elif len(tensors) == 1 and "mel" not in data:
            data = data[tensors[0]]
        else:
            keys = sorted(map(str, data))[:8]
            raise MelFileError(
                path, f"expected a tensor or a dict with a 'mel' tensor (or exactly one tensor), found keys {keys}"
            )
    if not isinstance(data, torch.Tensor):
        raise MelFileError(path, f"expected a mel tensor, found {type(data).__name__}")
    if data.layout != torch.strided or data.is_nested:
        raise MelFileError(path, f"a sparse or nested tensor ({data.layout}): save a dense mel (mel.to_dense())")
    if data.is_quantized:
        raise MelFileError(path, f"a quantized tensor ({data.dtype}): save a float mel (mel.dequantize())")
    if data.is_complex() or data.dtype == torch.bool:
        raise MelFileError(path, f"a mel must hold real numbers, this tensor is {data.dtype}")
    return data


# ---- values and messages ----------------------------------------------------------------

def _check_finite(path: Path, mel: torch.Tensor) -> None:
    bad = int((~torch.isfinite(mel)).sum())
    if bad:
        raise MelFileError(path, f"the mel holds {bad} NaN or infinite value{'s' if bad > 1 else ''}")


def _display(path: Path) -> str:
    """The path as printed: control characters (terminal escapes) escaped."""
    text = str(path)
    return text if text.isprintable() else ascii(text)[1:-1]


def _clean(text: str) -> str:
    """Text of a library's exception without terminal escapes or control characters."""
    return _ESCAPES.sub(" ", text).strip()


def _first_line(exc: BaseException) -> str:
    return _clean(first_line(exc))
