"""What a run directory guarantees: one process at a time, no stale partial files, nothing deleted.

- `RunLock`: fcntl.flock on RUN_DIR/.lock while `train()` runs (the file holds the PID).
  The OS drops the lock when the process ends, however it ends, so it never goes stale.
- `remove_partial_saves`: the temporary files of atomic saves that a kill left behind,
  removed under the lock (only then can no save of ours be in progress).
- `AsideFolder`: RUN_DIR/previous-<time>/, where files the run would otherwise overwrite
  or prune are moved (the old run on --restart, the newer branch when resuming an older
  checkpoint, unreadable checkpoints), keeping their place in the run's layout.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

from ..files import TEMPORARY
from ..errors import ConfigError
from .checkpointing import CHECKPOINT_DIR, EXPORT_NAME, checkpoint_step, save_failed

CONFIG_NAME = "config.yaml"
SUMMARY_NAME = "summary.json"
HISTORY_NAME = "validation.jsonl"
CURVES_NAME = "curves.png"
LOGS_NAME = "logs"
LOCK_NAME = ".lock"
ASIDE_PREFIX = "previous-"
# the run's own entries, in the order they are listed when set aside
RUN_ENTRIES = (CHECKPOINT_DIR, EXPORT_NAME, HISTORY_NAME, SUMMARY_NAME, CONFIG_NAME, LOGS_NAME, CURVES_NAME)
_TEXT_FILES = (CONFIG_NAME, SUMMARY_NAME, HISTORY_NAME, EXPORT_NAME)


def open_run_dir(out: str | Path) -> Path:
    """`out` as an existing folder (created if need be), or a ConfigError saying why it cannot be."""
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir}: is a file, not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {run_dir}: cannot create the folder: {exc.strerror or exc}") from None
    return run_dir


_HELD: set[int] = set()


def _close_in_child() -> None:
    """A forked child (a data-loader worker) must not keep the run locked after the trainer ends."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


class RunLock:
    """One process per run directory: an exclusive flock on RUN_DIR/.lock (see the module doc)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ConfigError(f"--out {self.run_dir}: cannot write there: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(fd)
            os.close(fd)
            raise ConfigError(
                f"--out {self.run_dir} is in use by another training process "
                f"({f'PID {holder}' if holder else 'PID unknown'}, holding {self.path}); wait for it to "
                "end, or use another --out"
            ) from None
        except OSError as exc:  # a file system without locks (some network mounts): train unguarded
            os.close(fd)
            print(f"hifigan train: warning: cannot lock {self.path} ({exc.strerror or exc}); make sure no "
                  "other process trains in this folder", file=sys.stderr, flush=True)
            return self
        self._fd = fd
        _HELD.add(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the PID is for the message of a refused process only
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None or fd not in _HELD:  # never locked, or a forked child (which closed it)
            return
        _HELD.discard(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)  # for every process sharing the descriptor
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _pid_in(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def remove_partial_saves(run_dir: Path) -> list[Path]:
    """Delete the temporary files our atomic saves leave when killed mid-write (call under the lock)."""
    removed = []
    for folder, is_ours in ((run_dir, lambda name: name in _TEXT_FILES),
                            (run_dir / CHECKPOINT_DIR, lambda name: checkpoint_step(name) is not None)):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = TEMPORARY.match(path.name)
            if match and is_ours(match.group("target")) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


class AsideFolder:
    """RUN_DIR/previous-<time>/, made on first use; a file moved there keeps its path in the run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path: Optional[Path] = None
        self.moved: list[str] = []
        self.copied: list[str] = []

    def _folder(self) -> Path:
        if self.path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for n in range(1, 1000):
                candidate = self.run_dir / f"{ASIDE_PREFIX}{stamp}{'' if n == 1 else f'-{n}'}"
                try:
                    candidate.mkdir()
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise save_failed(candidate, exc) from None
                self.path = candidate
                break
            else:
                raise ConfigError(f"{self.run_dir}: too many {ASIDE_PREFIX}{stamp}* folders")
        return self.path

    def move(self, path: Path) -> Path:
        """Rename `path` (a file or folder of the run) into the aside folder."""
        return self._place(path, os.replace, self.moved)

    def copy(self, path: Path) -> Path:
        """A copy of `path` (a file the run keeps part of) in the aside folder."""
        return self._place(path, shutil.copy2, self.copied)

    def _place(self, path: Path, transfer, record: list[str]) -> Path:
        """`transfer(path, target)` to the same place under the aside folder, listed in `record`."""
        relative = path.relative_to(self.run_dir)
        target = self._folder() / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            transfer(path, target)
        except OSError as exc:
            raise save_failed(target, exc) from None
        record.append(str(relative))
        return target

    def describe(self) -> str:
        """`a, b and c (and a copy of d) to RUN_DIR/previous-.../`"""
        listed = _listing(self.moved) + (f" (and a copy of {_listing(self.copied)})" if self.copied else "")
        return f"{listed} to {self.path}{os.sep}"


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
