"""The one place checkpoint formats plug in: an importer per toolkit, detected automatically.

A format is a module with a `FORMAT` (`base.CheckpointFormat`): `detect`
looks at a `CheckpointSource` without side effects, `read` returns the
generator weights in our layout and the config built from the toolkit's own
files. Adding a toolkit is a new module plus one line in `FORMATS`. Order
matters only where layouts nest: ours and NVIDIA's are more specific than the
authors' bare {"generator": ...}.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ...errors import CheckpointError
from ..source import CheckpointSource
from . import authors, coqui, nemo, nvidia, ours, parallel_wavegan, safetensors, speechbrain
from .base import CheckpointFormat, ImportedGenerator

FORMATS: tuple[CheckpointFormat, ...] = (
    ours.FORMAT,
    nvidia.FORMAT,
    authors.FORMAT,
    parallel_wavegan.FORMAT,
    coqui.FORMAT,
    speechbrain.FORMAT,
    nemo.FORMAT,
    safetensors.FORMAT,
)


def format_named(name: str) -> CheckpointFormat:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise CheckpointError(f"unknown checkpoint format {name!r}; formats are {', '.join(f.name for f in FORMATS)}")


def detect_format(source: CheckpointSource) -> CheckpointFormat:
    """The format that recognises `source`, or a CheckpointError saying what the file looks like."""
    for fmt in FORMATS:
        if fmt.detect(source):
            return fmt
    raise CheckpointError(describe_unknown(source))


def import_generator(path: Union[str, Path, CheckpointSource]) -> ImportedGenerator:
    """Read the generator of any known checkpoint (file or folder); see `FORMATS`."""
    source = path if isinstance(path, CheckpointSource) else CheckpointSource(path)
    return detect_format(source).read(source)


def describe_unknown(source: CheckpointSource) -> str:
    """One line naming what an unrecognised file looks like."""
    for fmt in FORMATS:
        text = fmt.describe(source)
        if text:
            return text
    known = ", ".join(fmt.toolkit for fmt in FORMATS)
    path, kind = source.path, source.kind
    if kind == "empty":
        return f"checkpoint {path} is empty (0 bytes): was it truncated while copying?"
    if kind in ("torch-zip", "pickle"):
        data = source.data
        what = (f"a dict with keys {sorted(map(str, data))[:8]}" if isinstance(data, dict)
                else f"a {type(data).__name__}")
        return f"{path} is a torch file holding {what}: not a generator checkpoint of {known}"
    if kind == "folder":
        return f"{path} is a folder with no checkpoint this package knows ({known})"
    return f"{path} is {source.describe_kind()}: not a generator checkpoint of {known}"


__all__ = ["FORMATS", "CheckpointFormat", "ImportedGenerator", "detect_format", "describe_unknown",
           "format_named", "import_generator"]
