"""A checkpoint as the importers see it: the file (or folder), what kind of container it is, its contents.

`CheckpointSource` sniffs the container from its first bytes (torch zip,
pickle, tar archive, safetensors, HDF5, YAML/JSON text, empty), loads a torch
file once through the allow-list unpickler, reads tar members into memory
(never extracting to disk), and finds the files a toolkit keeps beside its
weights (config.yml, config.json, hyperparams.yaml, stats.h5).
"""
from __future__ import annotations

import json
import tarfile
import zipfile
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Optional

from ..errors import CheckpointError
from .safe_pickle import plain_data, safe_torch_load

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class CheckpointSource:
    """One checkpoint path handed to the importers (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._files: dict[str, Optional[CheckpointSource]] = {}
        if not self.path.exists():
            raise CheckpointError(f"checkpoint {self.path} does not exist")

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()

    @cached_property
    def head(self) -> bytes:
        if self.is_folder:
            return b""
        try:
            with open(self.path, "rb") as handle:
                return handle.read(512)
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc.strerror}") from None

    @cached_property
    def kind(self) -> str:
        """'folder', 'empty', 'torch-zip', 'pickle', 'tar', 'safetensors', 'hdf5', 'text' or 'unknown'."""
        if self.is_folder:
            return "folder"
        head = self.head
        if not head:
            return "empty"
        if head.startswith(ZIP_MAGIC):
            return "torch-zip"
        if head.startswith(HDF5_MAGIC):
            return "hdf5"
        if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
            return "pickle"
        if len(head) >= 262 and head[257:262] == b"ustar" or head.startswith(b"\x1f\x8b"):
            return "tar" if self._is_tar() else "unknown"
        if len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
            return "safetensors"
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError:
            return "unknown"

    def _is_tar(self) -> bool:
        try:
            return tarfile.is_tarfile(self.path)
        except OSError:
            return False

    # ---- torch files -------------------------------------------------------------------
    @cached_property
    def data(self) -> Any:
        """The torch file's contents as plain data (OmegaConf and Lightning containers converted)."""
        if self.kind not in ("torch-zip", "pickle"):
            raise CheckpointError(f"{self.path} is not a torch file ({self.describe_kind()})")
        if self.kind == "torch-zip":
            self._check_zip()
        return plain_data(safe_torch_load(self.path, str(self.path)))

    def _check_zip(self) -> None:
        """Every member's CRC (torch.load does not check them): bit rot is a clear error, not noisy audio.

        One sequential read of the file, as fast as torch.load's own.
        """
        try:
            with zipfile.ZipFile(self.path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise CheckpointError(f"{self.path}: a damaged torch file (not a complete zip archive: {exc}); "
                                  "was it truncated while copying?") from None
        if bad is not None:
            raise CheckpointError(f"{self.path}: a damaged torch file: member {bad} fails its CRC check "
                                  "(bit rot or a bad copy); fetch the file again")

    def describe_kind(self) -> str:
        return {
            "folder": "a folder",
            "empty": "an empty file (0 bytes)",
            "torch-zip": "a torch file",
            "pickle": "a pickle",
            "tar": "a tar archive",
            "safetensors": "a safetensors file",
            "hdf5": "an HDF5 file",
            "text": "a text file",
            "unknown": "neither a torch file, a pickle nor an archive",
        }[self.kind]

    # ---- archives ------------------------------------------------------------------------
    @cached_property
    def tar_members(self) -> dict[str, tarfile.TarInfo]:
        """Regular files in the archive by base name (NeMo writes './model_config.yaml')."""
        try:
            with tarfile.open(self.path, "r:*") as archive:
                return {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CheckpointError(f"{self.path}: a damaged tar archive ({exc})") from None

    def tar_read(self, name: str, limit: int = 4 << 30) -> bytes:
        """One member's bytes, read into memory (nothing is extracted to disk)."""
        member = self.tar_members[name]
        if member.size > limit:
            raise CheckpointError(f"{self.path}: member {name} is {member.size} bytes, more than expected")
        with tarfile.open(self.path, "r:*") as archive:
            handle = archive.extractfile(archive.getmember(member.name))
            if handle is None:
                raise CheckpointError(f"{self.path}: member {name} cannot be read")
            return handle.read()

    # ---- files beside the checkpoint ------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self.path if self.is_folder else self.path.parent

    def file_for(self, name: str) -> Optional["CheckpointSource"]:
        """This source, or for a folder (a run, a model repo) its file `name` (None when it has none).

        Read once: the importers' detect and read share the same loaded file.
        """
        if not self.is_folder:
            return self
        if name not in self._files:
            path = self.beside(name)
            self._files[name] = CheckpointSource(path) if path is not None else None
        return self._files[name]

    def beside(self, *names: str) -> Optional[Path]:
        """The first of `names` that exists next to the checkpoint (or in the folder)."""
        for name in names:
            candidate = self.folder / name
            if candidate.is_file():
                return candidate
        return None


def read_yaml(path: Path, text: Optional[str] = None) -> Any:
    """YAML (or JSON) as plain data with the safe loader; errors name the file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_yaml_loader())
    except Exception as exc:
        raise CheckpointError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'YAML'}: "
                              f"{str(exc).splitlines()[0]}") from None


@lru_cache(maxsize=1)
def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that reads tags (HyperPyYAML's !new:, !ref, !name:) as plain data, never as code."""

    def tagged(loader, tag_suffix, node):
        if isinstance(node, yaml.MappingNode):
            value: Any = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
        return {"__tag__": "!" + tag_suffix, "value": value}

    Loader.add_multi_constructor("!", tagged)
    return Loader
