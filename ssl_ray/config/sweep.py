"""The schema of a sweep: a base experiment, a search space over its dotted keys, how to run it."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ssl_ray.config.io import load_yaml_mapping, set_path
from ssl_ray.config.schema import ExperimentConfig
from ssl_ray.errors import ConfigError

SAMPLERS = ("grid", "choice", "uniform", "loguniform", "randint")


SAMPLERS = ("grid", "choice", "uniform", "loguniform", "randint")


@dataclass(frozen=True)
class SearchDim:
    """One searched key: a list (``grid``) or ``{choice|uniform|loguniform|randint: [...]}``."""

    key: str
    kind: str
    values: List[Any]

    @classmethod
    def parse(cls, key: str, spec: Any) -> "SearchDim":
        if isinstance(spec, list):
            kind, values = "grid", spec
        elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in SAMPLERS:
            kind, values = next(iter(spec.items()))
        else:
            raise ConfigError(f"search_space.{key}: expected a list or one of {{{', '.join(SAMPLERS)}: [...]}}, got {spec!r}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"search_space.{key}: expected a non-empty list of values, got {values!r}")
        if kind in ("uniform", "loguniform", "randint"):
            if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or values[0] >= values[1]:
                raise ConfigError(f"search_space.{key}: {kind} takes [low, high] with low < high, got {values!r}")
            if kind == "loguniform" and values[0] <= 0:
                raise ConfigError(f"search_space.{key}: loguniform needs low > 0, got {values!r}")
        return cls(key, kind, values)

    def probe_values(self) -> List[Any]:
        """Values that stand for the whole dimension when validating: every grid/choice value, the range ends."""
        if self.kind == "randint":
            return [self.values[0], self.values[1] - 1]
        return list(self.values)


def default_results_dir() -> Path:
    return Path(os.environ.get("SSL_RAY_RESULTS", Path.cwd() / "results")).resolve()


def default_mlflow_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{default_results_dir() / 'mlflow.db'}"


SCHEDULERS = ("fifo", "asha")
SWEEP_FILE = "ssl_ray_sweep.yaml"  # a sweep's settings, in its directory: what --resume reads



@dataclass(frozen=True)
class SweepConfig:
    """A base experiment, a search space over dotted keys of it (``objective.lam``, ``model.width``, ...)
    and how to run the sweep."""

    name: str = "vicreg_digits"
    base: ExperimentConfig = field(default_factory=ExperimentConfig)
    search_space: Dict[str, Any] = field(default_factory=dict)
    num_samples: int = 1
    max_concurrent_trials: Optional[int] = None
    storage_path: Optional[str] = None  # default: results/sweeps
    mlflow_uri: Optional[str] = None  # default: MLFLOW_TRACKING_URI or sqlite under results/
    address: Optional[str] = None  # an existing Ray cluster; None starts a local one
    num_cpus: Optional[int] = None  # for a local Ray: CPUs to offer (None = all cores)
    # Ray Tune trial scheduler: "fifo" runs every trial to the end; "asha" stops the worse ones early
    # (ASHA on scheduler_metric, time = epochs). Losses of different objectives or lambdas are not
    # comparable: use ASHA within one objective setting, over widths, depths or learning rates.
    scheduler: str = "fifo"
    scheduler_metric: str = "train_loss"
    scheduler_mode: str = "min"
    asha_grace_period: int = 1
    asha_reduction_factor: float = 2.0
    report: bool = True  # write the figures and trial table (ssl-ray report) when the sweep ends
    description: Optional[str] = None  # one line a launcher's --help shows

    # ---- loading

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "SweepConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"a sweep config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} in sweep config (known: {', '.join(sorted(known))})")
        d = dict(d)
        base = ExperimentConfig.from_dict(d.pop("base", None))
        space = d.pop("search_space", None) or {}
        if not isinstance(space, dict):
            raise ConfigError(f"search_space must be a mapping of <section>.<key> to values, got {space!r}")
        return cls(base=base, search_space=dict(space), **d)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "SweepConfig":
        return cls.from_dict(load_yaml_mapping(path))

    def to_dict(self) -> Dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["base"] = self.base.to_dict()
        return out

    # ---- derived

    def dims(self) -> List[SearchDim]:
        return [SearchDim.parse(k, v) for k, v in self.search_space.items()]

    def resolved_storage(self) -> Path:
        return Path(self.storage_path).expanduser().resolve() if self.storage_path else default_results_dir() / "sweeps"

    def resolved_mlflow_uri(self) -> str:
        return self.mlflow_uri or default_mlflow_uri()

    def trial_configs_for_validation(self) -> List[tuple[Dict[str, Any], Dict[str, Any]]]:
        """``(searched values, full trial config)`` for the cross product of every dimension's
        representative values applied to the base; just the base when nothing is searched."""
        dims = self.dims()
        base = self.base.to_dict()
        combos = itertools.product(*[d.probe_values() for d in dims]) if dims else [()]
        out = []
        for combo in combos:
            cfg = copy.deepcopy(base)
            for dim, v in zip(dims, combo):
                set_path(cfg, dim.key, v)
            out.append(({dim.key: v for dim, v in zip(dims, combo)}, cfg))
        return out

    def replace(self, **changes: Any) -> "SweepConfig":
        return dataclasses.replace(self, **changes)

    def trial_list(self) -> List[Dict[str, Any]]:
        """The trials Ray Tune will run, as ``{key: value}`` of the searched keys: the cross product of the
        grid keys, repeated ``num_samples`` times; a sampled key reads ``kind[low, high]`` (or its choices)."""
        dims = self.dims()
        grid = [d for d in dims if d.kind == "grid"]
        sampled = {d.key: f"{d.kind}{d.values}" for d in dims if d.kind != "grid"}
        out = []
        for _ in range(self.num_samples):
            for combo in itertools.product(*[d.values for d in grid]) if grid else [()]:
                out.append({**{d.key: v for d, v in zip(grid, combo)}, **sampled})
        return out
