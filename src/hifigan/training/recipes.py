"""Recipe files: named training setups shipped as YAML (package data), or the user's own copy."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..config import PRESETS, HiFiGANConfig, resolve_config
from ..errors import ConfigError


def _recipe_folder():
    return resources.files("hifigan").joinpath("recipes")


def list_recipes() -> list[str]:
    """Names of the shipped recipes (`v1`, `v2`, `v3`, `v1-nvidia`)."""
    return sorted(p.name[: -len(".yaml")] for p in _recipe_folder().iterdir() if p.name.endswith(".yaml"))


def recipe_path(name: str) -> Path:
    """The file of a shipped recipe, to read or copy."""
    entry = _recipe_folder().joinpath(f"{name}.yaml")
    if not entry.is_file():
        raise ConfigError(f"unknown recipe {name!r}; recipes are {', '.join(list_recipes())}")
    return Path(str(entry))


def load_recipe(spec: "str | Path | HiFiGANConfig | dict | None") -> HiFiGANConfig:
    """A recipe name (`v1`, `v1-nvidia`...), a YAML/JSON file, an authors' config.json, or a config."""
    if spec is None:
        spec = "v1"
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text in list_recipes():
            return HiFiGANConfig.load(recipe_path(text))
        if not Path(text).exists() and text not in PRESETS:
            raise ConfigError(
                f"config {text!r} is neither a recipe ({', '.join(list_recipes())}) nor an existing file"
            )
    return resolve_config(spec)
