"""A recipe file (``configs/*.yaml``, ``--config``) as a mapping: relative paths made absolute inside its own folder,
one recipe merged over another. Reads YAML only; nothing here imports torch, ray or mlflow."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional

from ssl_ray.config import load_yaml_mapping
from ssl_ray.config.io import PATH_KEYS
from ssl_ray.errors import ConfigError


def recipe(config_file: Optional[str]) -> Dict[str, Any]:
    """A sweep config file as a mapping, its relative paths (``PATH_KEYS``) made absolute (against the file's
    folder). A relative path that leaves that folder (``../``, or a link out of it) is refused: a recipe someone hands
    you names files beside it, and a file elsewhere is named by an absolute path, in plain sight."""
    if not config_file:
        return {}
    raw = load_yaml_mapping(config_file)
    folder = Path(config_file).resolve().parent
    base = raw.get("base")
    if isinstance(base, dict):
        for key in PATH_KEYS:
            section, name = key.split(".")
            v = (base.get(section) or {}).get(name) if isinstance(base.get(section), dict) else None
            if isinstance(v, str) and v and not Path(v).expanduser().is_absolute() and "://" not in v:
                if not (folder / v).resolve().is_relative_to(folder):
                    raise ConfigError(
                        f"{key} {v!r} in {config_file}: a relative path must stay inside the recipe's "
                        f"folder {folder}; give a file elsewhere by its absolute path"
                    )
                base[section][name] = str(folder / v)
    return raw


def merge_recipes(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    """``over`` merged into ``base`` key by key (a ``search_space`` it gives replaces the base's)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "search_space":  # a search space given replaces the recipe's
            out[k] = copy.deepcopy(v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_recipes(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
