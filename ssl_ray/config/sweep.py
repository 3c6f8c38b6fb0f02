"""The schema of a sweep: a base experiment, a search space over its dotted keys, how to run it."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ssl_ray.config.io import load_yaml_mapping
from ssl_ray.config.schema import ExperimentConfig
from ssl_ray.errors import ConfigError

# Every sampler a search space may use, and what it draws: ``grid`` (a YAML list) and ``choice`` draw from
# their values; the others from a [low, high] range, of real numbers or of integers (high excluded). The one
# list: parsing, validation and the engines' spaces (ssl_ray.sweep.space) read it.
SAMPLERS = {"grid": "values", "choice": "values", "uniform": "reals", "loguniform": "reals", "randint": "integers"}


@dataclass(frozen=True)
class SearchDim:
    """One searched key: a list (``grid``) or ``{choice|uniform|loguniform|randint: [...]}``, optionally with
    ``when: {<searched key>: value or [values]}``: the key is searched only in trials where those earlier
    searched keys take one of those values (e.g. VICReg's ``objective.lam`` only where ``objective.name`` is
    ``vicreg``); elsewhere the trial leaves it out."""

    key: str
    kind: str
    values: List[Any]
    when: Dict[str, List[Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, key: str, spec: Any) -> "SearchDim":
        when: Dict[str, List[Any]] = {}
        if isinstance(spec, dict) and "when" in spec:
            spec = dict(spec)
            cond = spec.pop("when")
            if not isinstance(cond, dict) or not cond or not all(isinstance(k, str) for k in cond):
                raise ConfigError(
                    f"search_space.{key}.when: expected {{<searched key>: value or [values]}}, got {cond!r}"
                )
            when = {k: list(v) if isinstance(v, list) else [v] for k, v in cond.items()}
        if isinstance(spec, list):
            kind, values = "grid", spec
        elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in SAMPLERS:
            kind, values = next(iter(spec.items()))
        else:
            raise ConfigError(
                f"search_space.{key}: expected a list or one of {{{', '.join(SAMPLERS)}: [...]}} "
                f"(and optionally when: {{...}}), got {spec!r}"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(f"search_space.{key}: expected a non-empty list of values, got {values!r}")
        if SAMPLERS[kind] != "values":
            if (
                len(values) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                or values[0] >= values[1]
            ):
                raise ConfigError(f"search_space.{key}: {kind} takes [low, high] with low < high, got {values!r}")
            if kind == "loguniform" and values[0] <= 0:
                raise ConfigError(f"search_space.{key}: loguniform needs low > 0, got {values!r}")
        return cls(key, kind, values, when)

    def probe_values(self) -> List[Any]:
        """Values that stand for the whole dimension when validating: every grid/choice value, the range ends."""
        if self.kind == "randint":
            return [self.values[0], self.values[1] - 1]
        return list(self.values)

    def active(self, chosen: Dict[str, Any]) -> bool:
        """Whether this key is searched in a trial whose other searched keys took ``chosen``."""
        return all(chosen.get(k) in vals for k, vals in self.when.items())

    @property
    def continuous(self) -> bool:
        """Whether it draws real numbers from a range (``uniform``, ``loguniform``)."""
        return SAMPLERS[self.kind] == "reals"


def default_results_dir() -> Path:
    return Path(os.environ.get("SSL_RAY_RESULTS", Path.cwd() / "results")).resolve()


def default_mlflow_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{default_results_dir() / 'mlflow.db'}"


SCHEDULERS = ("fifo", "asha", "pbt")
SEARCH_ALGS = ("grid", "random", "optuna", "bohb")
ONLINE_METRICS = ("online/knn_val", "online/knn_val_embedding", "online/rankme")  # what ssl_ray.train.online reports
LOSS_METRIC = "train_loss"
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
    # How trials are proposed (Ray Tune search algorithms; ssl_ray/sweep/search.py): "grid" runs the cross
    # product of the lists, num_samples times, sampling the {choice|uniform|...} keys; "random" samples every
    # key, lists as choices; "optuna" (TPE, OptunaSearch) and "bohb" (TuneBOHB, with its HyperBandForBOHB
    # scheduler) propose each trial from the results so far: num_samples is the number of trials.
    search_alg: str = "grid"
    search_seed: int = 0  # the random, Optuna and BOHB proposals' seed
    # How running trials are stopped or changed (Ray Tune trial schedulers; time = epochs): "fifo" runs each
    # to its end; "asha" stops the worse ones at rungs grace_period x reduction_factor^k; "pbt" (Population
    # Based Training) every pbt_interval epochs clones the bottom quarter from the top quarter's checkpoints
    # and perturbs their searched optim.lr and objective coefficients.
    scheduler: str = "fifo"
    # What schedulers and searchers read: an online reading (every epoch; comparable across objectives and
    # coefficients) or train_loss (within one objective setting only). Mode None: max, min for a loss.
    scheduler_metric: str = "online/knn_val"
    scheduler_mode: Optional[str] = None
    asha_grace_period: int = 1
    asha_reduction_factor: float = 2.0
    pbt_interval: int = 2
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
        desc = d.get("description")
        if desc is not None and (not isinstance(desc, str) or "\n" in desc.strip() or len(desc) > 300):
            raise ConfigError(f"description must be one line of text (at most 300 characters), got {desc!r}")
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
        """The searched keys, the unconditional ones first (a ``when`` names only those)."""
        dims = [SearchDim.parse(k, v) for k, v in self.search_space.items()]
        return [d for d in dims if not d.when] + [d for d in dims if d.when]

    def metric_mode(self) -> str:
        """``scheduler_mode``, or its default: min for a loss, max for everything else."""
        return self.scheduler_mode or ("min" if self.scheduler_metric.endswith("loss") else "max")

    def resolved_storage(self) -> Path:
        return Path(self.storage_path).expanduser().resolve() if self.storage_path else default_results_dir() / "sweeps"

    def resolved_mlflow_uri(self) -> str:
        return self.mlflow_uri or default_mlflow_uri()

    def searched_combinations(self) -> List[Dict[str, Any]]:
        """``{dotted key: value}`` for the cross product of every dimension's representative values (a
        conditional key only where its ``when`` holds; each distinct trial once): what validation applies to
        the base (``base.with_values``) to check every trial; ``[{}]`` when nothing is searched."""
        dims = self.dims()
        combos = itertools.product(*[d.probe_values() for d in dims]) if dims else [()]
        out, seen = [], set()
        for combo in combos:
            chosen: Dict[str, Any] = {}
            for dim, v in zip(dims, combo):
                if dim.active(chosen):
                    chosen[dim.key] = v
            key = repr(sorted(chosen.items()))
            if key not in seen:
                seen.add(key)
                out.append(chosen)
        return out

    def replace(self, **changes: Any) -> "SweepConfig":
        return dataclasses.replace(self, **changes)

    def trial_list(self) -> List[Dict[str, Any]]:
        """The trials Ray Tune will run, as ``{key: value}`` of the searched keys. ``grid``: the cross product
        of the grid keys, repeated ``num_samples`` times; a sampled key reads ``kind[low, high]`` (or its
        choices). The other search algorithms: ``num_samples`` trials, every key sampled (a list as a choice)."""
        dims = self.dims()
        grid = [d for d in dims if d.kind == "grid" and self.search_alg == "grid"]

        def sampled(d: SearchDim) -> str:
            kind = "choice" if d.kind == "grid" else d.kind
            cond = " when " + ", ".join(f"{k} in {v}" for k, v in d.when.items()) if d.when else ""
            return f"{kind}{d.values}{cond}"

        rest = {d.key: sampled(d) for d in dims if d not in grid}
        out = []
        for _ in range(self.num_samples):
            for combo in itertools.product(*[d.values for d in grid]) if grid else [()]:
                out.append({**{d.key: v for d, v in zip(grid, combo)}, **rest})
        return out


EXPERIMENT = "experiment"  # the key of Tune's param space that holds the validated base ExperimentConfig


def searched_values(config: Mapping[str, Any], dims: Sequence[SearchDim]) -> Dict[str, Any]:
    """A trial's searched values by dotted key, from its Tune config (where Tune or its searcher put them, nested
    by section): a conditional key only where its ``when`` holds (else the base's value stands, whatever the
    search algorithm proposed for it); numpy scalars a searcher hands back become plain Python numbers."""
    chosen: Dict[str, Any] = {}
    for d in dims:
        section, name = d.key.split(".")
        if name not in (config.get(section) or {}):
            continue
        value = config[section][name]
        if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
            value = value.item()
        if d.active(chosen):
            chosen[d.key] = value
    return chosen


def trial_experiment(config: Mapping[str, Any], dims: Sequence[SearchDim]) -> ExperimentConfig:
    """A trial's typed config as it runs: the validated base that Tune's param space carries as
    ``config["experiment"]``, with the trial's searched values applied (``ExperimentConfig.with_values``:
    ``dataclasses.replace``, no dict round trip). The trial, its workers and the driver's callbacks all ask this."""
    base = config[EXPERIMENT]
    if not isinstance(base, ExperimentConfig):
        raise TypeError(
            f"config[{EXPERIMENT!r}] must be the validated ExperimentConfig, got {type(base).__name__}: {base!r}"[:300]
        )
    return base.with_values(searched_values(config, dims))
