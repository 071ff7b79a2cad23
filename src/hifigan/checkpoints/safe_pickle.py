"""Reading torch checkpoint pickles without running any code they name.

`torch.load(weights_only=True)` refuses the plain-data objects other toolkits
put in their checkpoints (OmegaConf configs in NeMo's Lightning files,
Lightning's AttributeDict, numpy scalars). `safe_torch_load` unpickles with an
allow-list instead: tensors and storages, Python's plain containers, numpy
arrays and scalars, torch dtypes and devices, and stand-ins for the OmegaConf
and Lightning containers, which `plain_data` turns into dicts and lists. Any
other global in the pickle (`os.system`, a toolkit's class) stops the load
before anything is called, with `UnsafeCheckpoint` naming it.
"""
from __future__ import annotations

import io
import pickle
import types
from pathlib import Path
from typing import Any, BinaryIO, Union

import torch

from ..errors import CheckpointError, first_line


class UnsafeCheckpoint(CheckpointError):
    """A pickle that names code outside the allow-list (it is never run)."""


class _Record:
    """Stand-in for a plain-data container class: keeps its constructor args and pickled state."""

    kind = "record"
    args: tuple = ()
    kwargs: dict = {}
    state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __reduce__(self):  # never pickled again; make that explicit
        raise TypeError("stand-in objects are not picklable")


def _stand_in(kind: str) -> type:
    return type(f"StandIn_{kind}", (_Record,), {"kind": kind, "__new__": lambda cls, *a, **k: object.__new__(cls)})


class _AttributeDict(dict):
    """Lightning's AttributeDict, read as a plain dict."""


_DICT_CONFIG = _stand_in("DictConfig")
_LIST_CONFIG = _stand_in("ListConfig")
_NODE = _stand_in("Node")
_METADATA = _stand_in("Metadata")
_TYPE_MARKER = _stand_in("type")

_OMEGACONF = {
    "DictConfig": _DICT_CONFIG,
    "ListConfig": _LIST_CONFIG,
    "Metadata": _METADATA,
    "ContainerMetadata": _METADATA,
}
_BUILTINS = {
    name: getattr(__import__("builtins"), name)
    for name in ("list", "dict", "set", "frozenset", "tuple", "int", "float", "str", "bytes", "bytearray",
                 "bool", "complex", "slice")
}
_BUILTINS["long"] = int
_BUILTINS["unicode"] = str


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed: dict[tuple[str, str], Any] = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1 and 2 pickles
        allowed[(module, "scalar")] = multiarray.scalar
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
    for name in dir(getattr(np, "dtypes", None)):
        if name.endswith("DType"):
            allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return allowed


_NUMPY = _numpy_globals()
_TORCH_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("collections", "defaultdict"): __import__("collections").defaultdict,
    ("collections", "Counter"): __import__("collections").Counter,
    ("_codecs", "encode"): __import__("codecs").encode,
}


def _find_allowed(module: str, name: str) -> Any:
    if (module, name) in _TORCH_FUNCTIONS:
        return _TORCH_FUNCTIONS[(module, name)]
    if module in ("builtins", "__builtin__") and name in _BUILTINS:
        return _BUILTINS[name]
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    if (module, name) in _NUMPY:
        return _NUMPY[(module, name)]
    if module.startswith("omegaconf."):
        if name in _OMEGACONF:
            return _OMEGACONF[name]
        if module == "omegaconf.nodes" and name.endswith("Node"):
            return _NODE
    if module == "typing" and name in ("Any", "Dict", "List", "Optional", "Union"):
        return _TYPE_MARKER
    if name == "AttributeDict" and module.split(".")[0] in ("pytorch_lightning", "lightning", "lightning_fabric"):
        return _AttributeDict
    raise UnsafeCheckpoint(f"{module}.{name}")


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allow-listed globals (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        return _find_allowed(module, name)


class _SafePickleModule(types.ModuleType):
    """What `torch.load(pickle_module=...)` needs: `Unpickler` and `load`."""

    Unpickler = SafeUnpickler

    @staticmethod
    def load(file: BinaryIO, **kwargs: Any) -> Any:
        return SafeUnpickler(file, **kwargs).load()


_PICKLE_MODULE = _SafePickleModule("hifigan_safe_pickle")


def safe_torch_load(source: Union[str, Path, bytes, BinaryIO], name: str) -> Any:
    """`torch.load` of a file, bytes or stream with the allow-list unpickler, on CPU.

    Raises UnsafeCheckpoint (naming the refused global) or CheckpointError,
    both naming `name` (the file as the user knows it).
    """
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        return torch.load(source, map_location="cpu", weights_only=False, pickle_module=_PICKLE_MODULE)
    except UnsafeCheckpoint as exc:
        raise UnsafeCheckpoint(
            f"{name} was refused without running it: its pickle calls {exc}, which is code, not data "
            "(only tensors, plain containers, numpy values and OmegaConf/Lightning configs are read)"
        ) from None
    except Exception as exc:
        text = first_line(exc)
        raise CheckpointError(f"{name}: not a readable torch file ({type(exc).__name__}: {text})") from None


def plain_data(value: Any) -> Any:
    """Stand-ins (OmegaConf configs and nodes, AttributeDict) -> dicts, lists and scalars."""
    if isinstance(value, _Record):
        state = value.state if isinstance(value.state, dict) else {}
        if value.kind == "DictConfig":
            content = state.get("_content")
            return {str(k): plain_data(v) for k, v in content.items()} if isinstance(content, dict) else content
        if value.kind == "ListConfig":
            content = state.get("_content")
            return [plain_data(v) for v in content] if isinstance(content, (list, tuple)) else content
        if value.kind == "Node":
            return plain_data(state.get("_val"))
        return None
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_data(v) for v in value) if isinstance(value, list) else tuple(
            plain_data(v) for v in value)
    return value


def safe_npy_load(path: Union[str, Path]) -> Any:
    """An .npy file, its object payload (a pickle, as Coqui's scale_stats.npy) read with the allow-list."""
    import numpy as np

    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        shape, _, dtype = np.lib.format._read_array_header(handle, version)
        if not dtype.hasobject:
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
        try:
            return SafeUnpickler(handle).load()
        except UnsafeCheckpoint as exc:
            raise UnsafeCheckpoint(f"{path} was refused without running it: its pickle calls {exc}") from None
