"""Typed configuration, validated once at the edge.

An :class:`ExperimentConfig` describes one trial (data, model, objective, optimizer, training,
probes). A :class:`SweepConfig` holds a base experiment, a search space over dotted keys of it
(``objective.lam``, ``model.width``, ...) and how to run the sweep.

Everything a user can get wrong -- unknown names, out-of-range numbers, unknown YAML keys, a search
space value that would make an invalid trial -- raises :class:`ssl_ray.errors.ConfigError` from
:func:`SweepConfig.validate`, which the CLI calls before Ray starts.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from ssl_ray.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# Pieces of one experiment


@dataclass
class DataConfig:
    dataset: str = "digits"
    data_root: Optional[str] = None
    image_size: int = 16
    augment: str = "digits"  # an augmentation protocol (ssl_ray/data/protocols.py)
    views: int = 2
    beton: Optional[str] = None  # a training .beton (`ssl-ray data write-beton`); read with FFCV
    loader: str = "auto"  # auto | memory | torchvision | ffcv (ssl_ray/data/loaders.py)
    superclass_map: Optional[str] = None  # digits, image folders: class -> superclass file
    num_workers: int = 0  # loader threads/processes; 0 -> train.cpus_per_worker (FFCV), in-process (torchvision)


@dataclass
class ModelConfig:
    backbone: str = "res"
    depth: int = 4
    width: int = 32
    projector_dims: List[int] = field(default_factory=lambda: [128, 128])
    projector_bn: bool = True
    projector_last_bias: bool = False


@dataclass
class ObjectiveConfig:
    """``name`` selects the objective; every other key is passed to its constructor."""

    name: str = "vicreg"
    params: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ObjectiveConfig":
        d = dict(d)
        name = d.pop("name", cls.name)
        params = dict(d.pop("params", {}) or {})
        params.update(d)
        return cls(name=name, params=params)

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, **self.params}


@dataclass
class OptimConfig:
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    batch_size: int = 256


@dataclass
class TrainConfig:
    # "ssl": the objective on the projector's embeddings of V views. "supervised": cross-entropy on the
    # class labels, with the projector's last layer as the classifier (one view; augment "none" for
    # no augmentation) -- the baseline the study compares SSL clustering against.
    mode: str = "ssl"
    epochs: int = 20
    seed: int = 0
    workers: int = 1
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    gpus_per_worker: float = 0.0  # > 0 implies use_gpu; fractions share a GPU between workers
    # Epochs whose checkpoints are kept for the probes; None -> 0, 1, 2, 4, 8, ... and the last.
    checkpoint_epochs: Optional[List[int]] = None
    # Extra checkpoints, for resuming only (not probed), every this many epochs; 0: none.
    resume_every: int = 1
    # Ray Train restarts the worker group from its latest checkpoint up to this many times (-1: always).
    max_failures: int = 2
    # Stop the trial as collapsed when the per-dimension std of its L2-normalized embeddings falls
    # below this (healthy: about 1/sqrt(D)); 0 disables. A non-finite loss always stops it as diverged.
    collapse_std: float = 1e-4
    # Start from the model weights of this checkpoint (a state.pt or its directory) instead of a fresh init.
    init_checkpoint: Optional[str] = None
    # GPU path (ssl_ray.train.precision). amp: "auto" (bf16 autocast on CUDA, off on the CPU), "bf16" or
    # "off". channels_last / sync_batchnorm: "auto" (on CUDA; SyncBatchNorm only with several workers),
    # "on" or "off".
    amp: str = "auto"
    channels_last: str = "auto"
    sync_batchnorm: str = "auto"
    # How a trial's workers are placed on nodes (Ray's placement strategies): PACK fills a node first,
    # SPREAD spreads them, STRICT_SPREAD puts each on its own node.
    placement_strategy: str = "PACK"

    def __post_init__(self) -> None:
        # YAML (files and --set) reads on/off as booleans
        for key in ("amp", "channels_last", "sync_batchnorm"):
            v = getattr(self, key)
            if isinstance(v, bool):
                setattr(self, key, "on" if v else "off")

    def gpus(self) -> float:
        """GPUs each worker reserves: gpus_per_worker, or 1 when only use_gpu is set."""
        return self.gpus_per_worker if self.gpus_per_worker > 0 else (1.0 if self.use_gpu else 0.0)

    def checkpoint_epochs_kept(self) -> List[int]:
        """Every epoch that gets a checkpoint: the probed ones and the resume points."""
        extra = set(range(0, self.epochs + 1, self.resume_every)) if self.resume_every > 0 else set()
        return sorted(set(self.checkpoint_schedule()) | extra)

    def checkpoint_schedule(self) -> List[int]:
        if self.checkpoint_epochs is not None:
            return sorted(set(e for e in self.checkpoint_epochs if 0 <= e <= self.epochs) | {self.epochs})
        sched = {0, self.epochs}
        e = 1
        while e < self.epochs:
            sched.add(e)
            e *= 2
        return sorted(sched)


@dataclass
class ProbeConfig:
    """What every kept checkpoint is probed with (``ssl_ray.probes``)."""

    # Target sets: sample, class, superclass, random_<r> (the study's graded randomness, from a target
    # bank), permuted_<r> (a fraction r of the labels permuted: the chance control). None -> sample,
    # class, superclass (where the dataset has superclasses), random_0.0/0.25/0.5/0.75/1.0, permuted_1.0.
    targets: Optional[List[str]] = None
    # Probe families from ssl_ray.probes.scoring.PROBES; None -> all of them.
    metrics: Optional[List[str]] = None
    layers: Optional[List[str]] = None  # None -> every tap of the model
    # The sample-level target: N images, each augmented train_views + test_views times. None -> the
    # dataset's default (the study's 500/100/20 for CIFAR and ImageNet; 20/100/20 for digits).
    sample_images: Optional[int] = None
    sample_train_views: Optional[int] = None
    sample_test_views: Optional[int] = None
    sample_augment: Optional[str] = None  # None -> the trial's data.augment (or the dataset's if that is 'none')
    # The random_<r> targets: a .npz written by `ssl-ray probe bank`. None -> a sweep trains a supervised
    # classifier for bank_epochs epochs first and uses its predictions (ssl_ray/sweep/bank.py).
    target_bank: Optional[str] = None
    bank_epochs: int = 20
    # The share of the probe's train rows held out (stratified, seeded) as validation: layers and trials are
    # chosen on it, never on test data.
    val_fraction: float = 0.2
    max_train_images: int = 50000  # class-level probe sets are subsampled (seeded) beyond these
    max_test_images: int = 10000
    linear_c: float = 1.0  # inverse L2 strength, as scikit-learn's C
    linear_max_iter: int = 100
    # MINE (ssl_ray/probes/mine.py): the estimator's defaults, 5 seeds as in the study.
    mine_seeds: int = 5
    mine_steps: int = 400
    mine_hidden: int = 64
    mine_batch_size: int = 256
    # Fan-out: resources per Ray task, checkpoints in flight at once (None -> cluster CPUs / num_cpus),
    # and attempts after the first for a task that fails.
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_concurrent: Optional[int] = None
    max_retries: int = 2
    seed: int = 0


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
    "probe": ProbeConfig,
}


def _build_section(name: str, cls: type, raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"section {name!r} must be a mapping, got {type(raw).__name__}: {raw!r}")
    if cls is ObjectiveConfig:
        return ObjectiveConfig.from_dict(raw)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key {name}.{unknown[0]} (known keys of {name}: {', '.join(sorted(known))})")
    return cls(**raw)


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> "ExperimentConfig":
        d = d or {}
        if not isinstance(d, dict):
            raise ConfigError(f"an experiment config must be a mapping, got {d!r}")
        unknown = sorted(set(d) - set(_SECTIONS))
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (known sections: {', '.join(_SECTIONS)})")
        return cls(**{k: _build_section(k, c, d.get(k)) for k, c in _SECTIONS.items()})

    def to_dict(self) -> Dict[str, Any]:
        out = {k: dataclasses.asdict(getattr(self, k)) for k in _SECTIONS if k != "objective"}
        out["objective"] = self.objective.to_dict()
        return out

    def validate(self) -> "ExperimentConfig":
        """Check every value; raise ConfigError naming the first bad one. Returns self."""
        from ssl_ray.data.augment import AUGMENTATIONS
        from ssl_ray.data.datasets import DATASETS
        from ssl_ray.data.loaders import LOADERS
        from ssl_ray.models.backbones import BACKBONES
        from ssl_ray.objectives import OBJECTIVES

        d, m, o, opt, t, p = self.data, self.model, self.objective, self.optim, self.train, self.probe
        AUGMENTATIONS.get(d.augment)
        _check_int("data.image_size", d.image_size, lo=4)
        _check_int("data.views", d.views, lo=2)
        _check_int("data.num_workers", d.num_workers, lo=0)
        if d.loader not in LOADERS:
            raise ConfigError(f"unknown data.loader {d.loader!r} (known: {', '.join(LOADERS)})")
        if d.beton is not None:
            from ssl_ray.data.beton import inspect_beton

            inspect_beton(d.beton)
        elif d.loader == "ffcv":
            raise ConfigError("data.loader 'ffcv' needs data.beton (--beton): a .beton written by `ssl-ray data write-beton`")
        source = DATASETS.get(d.dataset)
        source.check(d.dataset, d.data_root, d.superclass_map)  # probes read the dataset even when training reads a .beton
        if d.loader == "memory" and not source.in_memory:
            raise ConfigError(f"data.loader 'memory' needs an in-memory dataset; {d.dataset!r} is read from image files "
                              f"(use 'torchvision' or a .beton)")

        BACKBONES.get(m.backbone)
        _check_int("model.depth", m.depth, lo=1)
        _check_int("model.width", m.width, lo=1)
        if not isinstance(m.projector_dims, list) or not m.projector_dims:
            raise ConfigError(f"model.projector_dims must be a non-empty list of positive ints, got {m.projector_dims!r}")
        for i, dim in enumerate(m.projector_dims):
            _check_int(f"model.projector_dims[{i}]", dim, lo=1)

        obj_cls = OBJECTIVES.get(o.name)
        sig = inspect.signature(obj_cls)
        for k, v in o.params.items():
            if k not in sig.parameters:
                raise ConfigError(f"unknown hyperparameter objective.{k} for {o.name!r} (known: {', '.join(sig.parameters)})")
            _check_number(f"objective.{k}", v)
        try:
            obj_cls.check_hparams(**o.params)
        except ValueError as e:
            raise ConfigError(str(e)) from None

        if opt.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {opt.optimizer!r} (known: {', '.join(OPTIMIZERS)})")
        _check_number("optim.lr", opt.lr, lo=0.0, strict=True)
        _check_number("optim.weight_decay", opt.weight_decay, lo=0.0)
        _check_int("optim.warmup_epochs", opt.warmup_epochs, lo=0)
        _check_int("optim.batch_size", opt.batch_size, lo=2)

        if t.mode not in MODES:
            raise ConfigError(f"unknown train.mode {t.mode!r} (known: {', '.join(MODES)})")
        _check_int("train.epochs", t.epochs, lo=1)
        _check_int("train.seed", t.seed, lo=0)
        _check_int("train.workers", t.workers, lo=1)
        _check_number("train.cpus_per_worker", t.cpus_per_worker, lo=0.0, strict=True)
        _check_number("train.gpus_per_worker", t.gpus_per_worker, lo=0.0)
        _check_int("train.max_failures", t.max_failures, lo=-1)
        _check_int("train.resume_every", t.resume_every, lo=0)
        _check_number("train.collapse_std", t.collapse_std, lo=0.0)
        _check_choice("train.amp", t.amp, AMP_MODES)
        _check_choice("train.channels_last", t.channels_last, SWITCHES)
        _check_choice("train.sync_batchnorm", t.sync_batchnorm, SWITCHES)
        _check_choice("train.placement_strategy", t.placement_strategy, PLACEMENT_STRATEGIES)
        if t.sync_batchnorm == "on" and t.gpus() == 0:
            raise ConfigError("train.sync_batchnorm=on needs CUDA workers (train.use_gpu or train.gpus_per_worker): "
                              "torch's SyncBatchNorm runs only on GPUs")
        if t.init_checkpoint is not None:
            self._check_init_checkpoint()
        if t.checkpoint_epochs is not None:
            if not isinstance(t.checkpoint_epochs, list):
                raise ConfigError(f"train.checkpoint_epochs must be a list of epochs, got {t.checkpoint_epochs!r}")
            for e in t.checkpoint_epochs:
                _check_int("train.checkpoint_epochs[]", e, lo=0, hi=t.epochs)

        self._validate_probe()
        return self

    def _check_init_checkpoint(self) -> None:
        """The checkpoint must load (as data) and hold the backbone and projector this run builds."""
        from ssl_ray.train.state import CorruptCheckpoint, load_state

        path = Path(self.train.init_checkpoint).expanduser().resolve()
        ckpt_dir = path.parent if path.is_file() else path
        if not ckpt_dir.is_dir() or not (ckpt_dir / "state.pt").is_file():
            raise ConfigError(f"train.init_checkpoint {str(path)!r}: no such checkpoint (a state.pt or its directory)")
        try:
            saved = load_state(str(ckpt_dir))
        except CorruptCheckpoint as e:
            raise ConfigError(f"train.init_checkpoint: {e}") from None
        theirs = (saved.get("config") or {}).get("model") or {}
        mine = dataclasses.asdict(self.model)
        diff = [k for k in ("backbone", "depth", "width", "projector_dims") if theirs.get(k) != mine[k]
                and not (k == "depth" and mine["backbone"] != "res")]
        if diff:
            raise ConfigError(f"train.init_checkpoint {str(ckpt_dir)!r} holds a different model: "
                              + ", ".join(f"model.{k} {theirs.get(k)!r} there, {mine[k]!r} here" for k in diff))
        self.train.init_checkpoint = str(ckpt_dir)

    def _validate_probe(self) -> None:
        from ssl_ray.data.augment import AUGMENTATIONS
        from ssl_ray.data.datasets import dataset_meta
        from ssl_ray.probes.scoring import PROBES
        from ssl_ray.probes.targets import TargetBank, default_targets, needs_bank, parse_target

        d, p = self.data, self.probe
        for key in ("targets", "metrics", "layers"):
            v = getattr(p, key)
            if v is not None and (not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v)):
                raise ConfigError(f"probe.{key} must be null or a non-empty list of names, got {v!r}")
        for name in p.metrics or []:
            PROBES.get(name)
        kinds = [parse_target(name)[0] for name in p.targets or []]
        if "superclass" in kinds and not dataset_meta(d.dataset, d.data_root, d.superclass_map)["num_superclasses"]:
            raise ConfigError(f"probe target 'superclass': dataset {d.dataset!r} has no superclass labels"
                              + (" (give data.superclass_map)" if d.dataset in ("digits", "imagefolder", "imagenet") else ""))
        for key in ("sample_images", "sample_train_views", "sample_test_views"):
            if getattr(p, key) is not None:
                _check_int(f"probe.{key}", getattr(p, key), lo=2 if key == "sample_images" else 1)
        if p.sample_augment is not None:
            AUGMENTATIONS.get(p.sample_augment)
        if p.target_bank is not None and needs_bank(p.targets or default_targets(False)):
            TargetBank.load(p.target_bank)
        _check_int("probe.bank_epochs", p.bank_epochs, lo=5)
        _check_number("probe.val_fraction", p.val_fraction, lo=0.0, strict=True)
        if p.val_fraction >= 0.5:
            raise ConfigError(f"probe.val_fraction must be < 0.5 (the probes fit on the rest), got {p.val_fraction!r}")
        _check_int("probe.max_train_images", p.max_train_images, lo=10)
        _check_int("probe.max_test_images", p.max_test_images, lo=10)
        _check_number("probe.linear_c", p.linear_c, lo=0.0, strict=True)
        _check_int("probe.linear_max_iter", p.linear_max_iter, lo=1)
        _check_int("probe.mine_seeds", p.mine_seeds, lo=1)
        _check_int("probe.mine_steps", p.mine_steps, lo=1)
        _check_int("probe.mine_hidden", p.mine_hidden, lo=1)
        _check_int("probe.mine_batch_size", p.mine_batch_size, lo=2)
        _check_number("probe.num_cpus", p.num_cpus, lo=0.0)
        _check_number("probe.num_gpus", p.num_gpus, lo=0.0)
        if p.max_concurrent is not None:
            _check_int("probe.max_concurrent", p.max_concurrent, lo=1)
        _check_int("probe.max_retries", p.max_retries, lo=0)
        _check_int("probe.seed", p.seed, lo=0)


OPTIMIZERS = ("adamw", "sgd", "lars")
TRIAL_DRIVER_CPUS = 0.01  # what each trial's Tune function (which drives its TorchTrainer) reserves
MODES = ("ssl", "supervised")
AMP_MODES = ("auto", "bf16", "off")
SWITCHES = ("auto", "on", "off")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_SPREAD", "STRICT_PACK")


def _check_choice(key: str, v: Any, known: tuple) -> None:
    if v not in known:
        raise ConfigError(f"unknown {key} {v!r} (known: {', '.join(known)})")


def _check_int(key: str, v: Any, lo: Optional[int] = None, hi: Optional[int] = None) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key} must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ConfigError(f"{key} must be >= {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise ConfigError(f"{key} must be <= {hi}, got {v!r}")


def _check_number(key: str, v: Any, lo: Optional[float] = None, strict: bool = False) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{key} must be a finite number, got {v!r}")
    if lo is not None and (v <= lo if strict else v < lo):
        raise ConfigError(f"{key} must be {'>' if strict else '>='} {lo}, got {v!r}")


# ----------------------------------------------------------------------------------------------
# Dotted keys


def get_path(d: Dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        cur = cur[part]
    return cur


def set_path(d: Dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``d['a']['b'] = value`` for ``dotted='a.b'``; the section must exist."""
    parts = dotted.split(".")
    if len(parts) != 2 or parts[0] not in _SECTIONS:
        raise ConfigError(f"bad key {dotted!r}: keys look like <section>.<name> with section in {', '.join(_SECTIONS)}")
    d.setdefault(parts[0], {})
    if not isinstance(d[parts[0]], dict):
        raise ConfigError(f"section {parts[0]!r} must be a mapping")
    d[parts[0]][parts[1]] = value


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# ----------------------------------------------------------------------------------------------
# Search spaces: dotted key -> list (grid) or {choice|uniform|loguniform|randint: [...]}

_SAMPLERS = ("grid", "choice", "uniform", "loguniform", "randint")


@dataclass
class SearchDim:
    key: str
    kind: str
    values: List[Any]

    @classmethod
    def parse(cls, key: str, spec: Any) -> "SearchDim":
        if isinstance(spec, list):
            kind, values = "grid", spec
        elif isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in _SAMPLERS:
            kind, values = next(iter(spec.items()))
        else:
            raise ConfigError(f"search_space.{key}: expected a list or one of {{{', '.join(_SAMPLERS)}: [...]}}, got {spec!r}")
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

    def to_tune(self):
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(self.values)
        if self.kind == "choice":
            return tune.choice(self.values)
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        return tune.randint(*self.values)


def default_results_dir() -> Path:
    return Path(os.environ.get("SSL_RAY_RESULTS", Path.cwd() / "results")).resolve()


def default_mlflow_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{default_results_dir() / 'mlflow.db'}"


@dataclass
class SweepConfig:
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

    def param_space(self) -> Dict[str, Any]:
        """The Ray Tune param space: the full base config with searched leaves as Tune domains."""
        space = self.base.to_dict()
        for dim in self.dims():
            set_path(space, dim.key, dim.to_tune())
        return space

    def validate(self) -> "SweepConfig":
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"sweep name must be letters, digits, '-', '_' or '.', got {self.name!r}")
        _check_int("num_samples", self.num_samples, lo=1)
        if self.max_concurrent_trials is not None:
            _check_int("max_concurrent_trials", self.max_concurrent_trials, lo=1)
        if self.num_cpus is not None:
            _check_int("num_cpus", self.num_cpus, lo=1)
        if not isinstance(self.report, bool):
            raise ConfigError(f"report must be true or false, got {self.report!r}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown scheduler {self.scheduler!r} (known: {', '.join(SCHEDULERS)})")
        if self.scheduler_mode not in ("min", "max"):
            raise ConfigError(f"scheduler_mode must be 'min' or 'max', got {self.scheduler_mode!r}")
        _check_int("asha_grace_period", self.asha_grace_period, lo=1)
        _check_number("asha_reduction_factor", self.asha_reduction_factor, lo=1.0, strict=True)
        check_tracking_uri(self.resolved_mlflow_uri())
        self._check_bank_is_shared()
        # Every trial the search space yields must be valid; the base alone is never run when a
        # searched key overrides it (e.g. base objective vicreg, searched objective.name=[mmcr]).
        # A local Ray instance has a known size: a trial that can never fit would wait forever.
        local_cpus = None if self.address else (self.num_cpus or os.cpu_count() or 1)
        for searched, cfg in self.trial_configs_for_validation():
            try:
                exp = ExperimentConfig.from_dict(cfg).validate()
                need = exp.train.workers * exp.train.cpus_per_worker + TRIAL_DRIVER_CPUS
                if local_cpus is not None and exp.train.gpus() > 0 and not local_gpus():
                    raise ConfigError(f"a trial asks for {exp.train.gpus():g} GPU(s) per worker but this machine has no "
                                      f"CUDA GPU; run on a GPU cluster (--address) or drop --gpus-per-worker / train.use_gpu")
                if local_cpus is not None and need > local_cpus + 1e-9:
                    raise ConfigError(
                        f"a trial needs {need:g} CPUs (train.workers {exp.train.workers} x train.cpus_per_worker "
                        f"{exp.train.cpus_per_worker:g} + {TRIAL_DRIVER_CPUS} for the trial's driver) but the local Ray "
                        f"instance has {local_cpus}; lower --cpus-per-worker (fractions work, e.g. 0.95) or --workers")
            except ConfigError as e:
                # name the trial when the fault lies in a section that the search changes
                blamed = any(f"{k.split('.')[0]}." in str(e) for k in searched)
                where = f" (in the trial with {', '.join(f'{k}={v}' for k, v in searched.items())})" if blamed else ""
                raise ConfigError(f"{e}{where}") from None
        return self


    def _check_bank_is_shared(self) -> None:
        """A sweep trains one target bank on the base dataset; every trial must probe that dataset."""
        from ssl_ray.probes.targets import default_targets, needs_bank

        p = self.base.probe
        if p.target_bank is not None or not needs_bank(p.targets or default_targets(False)):
            return
        for key in ("data.dataset", "data.data_root"):
            if key in self.search_space:
                raise ConfigError(f"{key} is searched, but a sweep builds one target bank (for the random_<r> targets) "
                                  f"on the base dataset; run one sweep per dataset, give probe.target_bank, or drop "
                                  f"the random_<r> targets (probe.targets)")


SCHEDULERS = ("fifo", "asha")
SWEEP_FILE = "ssl_ray_sweep.yaml"  # a sweep's settings, in its directory: what --resume reads


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail early on a tracking URI that cannot work: an unreachable server, a SQLite file in a folder
    that cannot be created, or a scheme MLflow 3 no longer takes (plain folders, ``file:``)."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    u = urlparse(uri)
    if u.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
                r.read(64)
        except urllib.error.HTTPError:
            return  # it answers: a server is there (some proxies do not serve /health)
        except (urllib.error.URLError, OSError) as e:
            why = getattr(e, "reason", e)
            raise ConfigError(f"MLflow tracking server {uri} is unreachable ({why}); start it "
                              f"(mlflow server --host 127.0.0.1 --port <port>) or fix --mlflow-uri") from None
    elif u.scheme == "sqlite":
        path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(f"MLflow URI {uri!r}: expected sqlite:///<path to a .db file>")
        folder = Path(path).expanduser().resolve().parent
        probe = folder
        while not probe.exists():  # the nearest existing ancestor must be a writable directory
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK):
            raise ConfigError(f"MLflow URI {uri!r}: cannot create the database folder {folder} ({probe} is not a writable directory)")
    elif u.scheme in ("databricks", "postgresql", "mysql", "mssql") or u.scheme.startswith(("postgresql+", "mysql+", "mssql+")):
        return
    else:
        raise ConfigError(f"MLflow URI {uri!r}: MLflow 3 stores runs in a database or on a server; use sqlite:///<file.db> "
                          f"or http://<host>:<port>")


def load_yaml_mapping(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a YAML file that must hold a mapping; ConfigError naming the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"malformed YAML in {str(p)!r}{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping, got {type(raw).__name__}")
    return raw


def parse_value(text: str) -> Any:
    """Parse a CLI value with YAML rules: ``25`` -> int, ``1e-3`` -> float, ``[16,32]`` -> list."""
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"cannot parse value {text!r}") from None
    return _floats(v)


def _floats(v: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` and ``1e30`` as strings; read them as the numbers they are."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    if isinstance(v, list):
        return [_floats(x) for x in v]
    return v
