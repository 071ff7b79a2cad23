"""Recipes are presets: named YAML configs shipped as package data (one registry, in `config.py`).

These names are kept for the training API; they are the same functions.
"""
from __future__ import annotations

from ..config import preset_names as list_recipes
from ..config import preset_path as recipe_path
from ..config import resolve_config as load_recipe

__all__ = ["list_recipes", "load_recipe", "recipe_path"]
