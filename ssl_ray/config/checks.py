"""Value checks every layer's validation shares: one ``ConfigError`` line naming the key and the value."""

from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

from ssl_ray.errors import ConfigError

# The bounds of every count and seed a config may give (validation refuses beyond them).
MAX_TRIALS = 10000
MAX_EPOCHS = 10000
MAX_CPUS = 100000
MAX_SEED = 2**32 - 1  # numpy's seeds stop here (torch's go further)


def check_choice(key: str, v: Any, known: Sequence[str]) -> None:
    if v not in known:
        raise ConfigError(f"unknown {key} {v!r} (known: {', '.join(known)})")


def check_int(key: str, v: Any, lo: Optional[int] = None, hi: Optional[int] = None) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key} must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ConfigError(f"{key} must be >= {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise ConfigError(f"{key} must be <= {hi}, got {v!r}")


def check_number(
    key: str, v: Any, lo: Optional[float] = None, strict: bool = False, hi: Optional[float] = None
) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{key} must be a finite number, got {v!r}")
    if lo is not None and (v <= lo if strict else v < lo):
        raise ConfigError(f"{key} must be {'>' if strict else '>='} {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise ConfigError(f"{key} must be <= {hi}, got {v!r}")


def check_names(key: str, v: Any) -> None:
    """``None`` or a non-empty list of distinct strings."""
    if v is not None and (not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v)):
        raise ConfigError(f"{key} must be null or a non-empty list of names, got {v!r}")
    twice = next((x for i, x in enumerate(v or []) if x in v[:i]), None)
    if twice is not None:
        raise ConfigError(f"{key}: {twice!r} is given twice; give each name once")


SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_sweep_name(v: Any) -> None:
    """A sweep's name names its directory, its MLflow experiment and its report folder: one plain path
    component (never ``.``, ``..``, a path or an absolute name)."""
    if not isinstance(v, str) or not SWEEP_NAME.fullmatch(v):
        raise ConfigError(
            f"sweep name must be 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit, got {v!r}"
        )
