"""Writing files so that a crash, a kill or a full disk never leaves a half-written one.

Every file the package writes for the user (checkpoints, exports, audio, lists,
run files) goes through `atomic_write`: the data goes to `.<name>.<8 hex>.tmp`
beside the target, is fsync'd, and is renamed over the target; on any failure
the temporary file is removed and the target is as it was. Temporary files get
the mode a new file gets (0o666 less the umask), not mkstemp's 0o600, so the
result has the usual permissions. `TEMPORARY` matches the names (a run's next
start removes leftovers of a kill).
"""
from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, Union

PathLike = Union[str, Path]
TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _reserve(path: Path) -> Path:
    temporary = temporary_name(path)
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return temporary


def _fsync(path: Path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextmanager
def staged(path: PathLike) -> Iterator[Path]:
    """A reserved temporary path beside `path`; on leaving the block it is fsync'd and renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _reserve(path)
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync(path.parent, directory=True)


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> Path:
    """`write(temporary)` then rename it over `path` (see the module docstring)."""
    with staged(path) as temporary:
        write(temporary)
    return Path(path)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def atomic_write_many(contents: Mapping[Path, bytes]) -> None:
    """Several files replaced together: all are written first, then all renamed; a failure changes none."""
    staged_files: list[tuple[Path, Path]] = []
    try:
        for path, data in contents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = _reserve(path)
            staged_files.append((temporary, path))
            temporary.write_bytes(data)
            _fsync(temporary)
    except BaseException:
        for temporary, _ in staged_files:
            temporary.unlink(missing_ok=True)
        raise
    for temporary, path in staged_files:
        os.replace(temporary, path)
    for folder in {path.parent for _, path in staged_files}:
        _fsync(folder, directory=True)
