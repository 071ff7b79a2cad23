"""The C source of the fused fast-convolution kernel: the files of `native/`, shipped as package data.

`fast_native` compiles them at first use. They are read with importlib.resources,
so they are found wherever the package lives (a wheel, an editable checkout, a zip),
and the build cache key hashes every one of them.
"""
from __future__ import annotations

from importlib import resources

MAIN = "hg_fast.c"  # the translation unit; the headers beside it are #included by name
SUFFIXES = (".c", ".h")


def sources() -> dict[str, bytes]:
    """Every .c and .h file of the kernel by name, sorted; OSError when the package lacks them."""
    folder = resources.files(__package__).joinpath("native")
    files = {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.name.endswith(SUFFIXES)}
    if MAIN not in files:
        raise FileNotFoundError(f"the kernel source native/{MAIN} is missing from the installed hifigan package")
    return dict(sorted(files.items()))
