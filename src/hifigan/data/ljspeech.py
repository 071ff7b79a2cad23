"""LJ Speech 1.1: download the official archive, verify it, unpack it safely.

The archive is 2,748,572,632 bytes; its SHA-256 below is the one torchaudio's
LJSPEECH dataset and other public recipes check against. The download streams
to `<name>.part` with a progress bar and hashes on the fly; an archive already
in place is re-verified, not fetched again. Unpacking streams through the
tar file (bz2 cannot seek cheaply) and refuses any member that would land
outside the target folder, links and special files.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Optional

from tqdm.auto import tqdm

from ..errors import DataError
from .lists import LJ_METADATA, PathLike, is_ljspeech_folder, normalise_path

LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
LJSPEECH_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
LJSPEECH_BYTES = 2_748_572_632
LJSPEECH_FOLDER = "LJSpeech-1.1"
CHUNK = 1 << 20


def sha256_of(path: Path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as handle, tqdm(
        total=size, unit="B", unit_scale=True, desc=f"verifying {path.name}", disable=not progress, leave=False
    ) as bar:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _make_folder(folder: Path) -> None:
    """Create `folder` (and its parents), or say in one line why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None


def download(url: str, target: Path, sha256: Optional[str], progress: bool = True) -> Path:
    """Stream `url` to `target` (via `target.part`), checking the SHA-256 when given."""
    _make_folder(target.parent)
    if target.exists():
        if sha256 is None or sha256_of(target, progress) == sha256:
            return target
        raise DataError(
            f"{target} exists but its SHA-256 is not the expected {sha256}; delete it to download again"
        )
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with partial.open("wb") as handle, tqdm(
                total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}",
                disable=not progress,
            ) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    handle.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"cannot download {url}: {reason} (is this machine online?)") from None
    actual = digest.hexdigest()
    if sha256 is not None and actual != sha256:
        raise DataError(
            f"{url}: the download's SHA-256 is {actual}, expected {sha256}; the incomplete or "
            f"altered file is kept as {partial}"
        )
    os.replace(partial, target)
    return target


def _safe_member(member: tarfile.TarInfo, dest: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or (dest / name).resolve() != (dest.resolve() / name):
        raise DataError(f"archive member {member.name!r} would be written outside {dest}; refusing to unpack")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"archive member {member.name!r} is a link or special file; refusing to unpack")


def unpack(archive: Path, dest: Path, progress: bool = True) -> list[str]:
    """Unpack a tar archive (any compression) into `dest`; returns its top-level names."""
    _make_folder(dest)
    tops: list[str] = []
    try:
        with tarfile.open(archive, mode="r|*") as tar, tqdm(
            desc=f"unpacking {archive.name}", unit="file", disable=not progress, leave=False
        ) as bar:
            for member in tar:
                _safe_member(member, dest)
                top = PurePosixPath(member.name).parts[0] if member.name not in ("", ".") else ""
                if top and top not in tops:
                    tops.append(top)
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, dest, filter="data")
                else:  # checked by _safe_member above
                    tar.extract(member, dest)
                bar.update()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    return tops


def download_ljspeech(
    dest: PathLike,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    progress: bool = True,
    keep_archive: bool = False,
) -> Path:
    """Download, verify and unpack LJ Speech into `dest`; returns the LJSpeech-1.1 folder.

    Without `url`, the official archive and its SHA-256; a `url` of your own (a
    mirror) is verified when `sha256` is given. A folder already unpacked in
    `dest` is used as it is.
    """
    if url is None:
        url, sha256 = LJSPEECH_URL, sha256 or LJSPEECH_SHA256
    dest = normalise_path(dest)
    archive = dest / PurePosixPath(urllib.parse.urlparse(url).path).name
    expected = dest / archive.name.split(".tar")[0]
    if is_ljspeech_folder(expected):
        return expected
    download(url, archive, sha256, progress)
    tops = unpack(archive, dest, progress)
    folders = [dest / t for t in tops if is_ljspeech_folder(dest / t)]
    if not folders:
        raise DataError(
            f"{archive}: unpacked, but no folder with {LJ_METADATA} and wavs/ was found in it "
            f"(top-level entries: {', '.join(tops) or 'none'})"
        )
    if not keep_archive:
        archive.unlink()
    return folders[0]


__all__ = ["LJSPEECH_BYTES", "LJSPEECH_SHA256", "LJSPEECH_URL", "download", "download_ljspeech", "unpack"]
