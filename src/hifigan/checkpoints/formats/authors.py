"""The authors' files (jik876/hifi-gan): `g_XXXXXXXX` = {"generator": state_dict}, config.json beside.

Weight norm is stored as weight_g/weight_v; `do_XXXXXXXX` files hold the
discriminators (mpd, msd) and optimiser states, not a generator.
"""
from __future__ import annotations

from typing import Optional

from ...config import HiFiGANConfig
from ..source import CheckpointSource
from .base import CheckpointFormat, ImportedGenerator, tensors_only


def _data(source: CheckpointSource):
    return source.data if source.kind in ("torch-zip", "pickle") else None


def detect(source: CheckpointSource) -> bool:
    data = _data(source)
    return (isinstance(data, dict) and tensors_only(data.get("generator"))
            and any(k.startswith("conv_pre.") for k in data["generator"]))


def read(source: CheckpointSource) -> ImportedGenerator:
    config: Optional[HiFiGANConfig] = None
    files = [source.path]
    beside = source.beside("config.json")
    if beside is not None:
        config = HiFiGANConfig.load(beside)
        files.append(beside)
    return ImportedGenerator(dict(source.data["generator"]), config, "authors", files)


def describe(source: CheckpointSource) -> Optional[str]:
    data = _data(source)
    if isinstance(data, dict) and "mpd" in data and "msd" in data:
        return (f"{source.path} is the authors' discriminator checkpoint (do_ file); "
                "a generator needs the matching g_ file")
    return None


FORMAT = CheckpointFormat(
    name="authors", toolkit="the authors' HiFi-GAN (jik876/hifi-gan)", files="g_XXXXXXXX + config.json beside",
    detect=detect, read=read, describe=describe,
)
