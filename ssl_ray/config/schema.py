"""The schema of one experiment: typed, frozen dataclasses, one per section.

An :class:`ExperimentConfig` describes one trial (data, model, objective, optimizer, training,
probes). This module knows the *shape* of a config (section and key names, types, defaults) and
nothing else: which names exist (datasets, objectives, optimizers, ...) is asked of their registries
by :mod:`ssl_ray.validation`, which returns the normalized config the rest of the package receives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ssl_ray.config.hparams import Hparams, VICRegHparams, hparams_class
from ssl_ray.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# Pieces of one experiment


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "res"
    depth: int = 4
    width: int = 32
    projector_dims: List[int] = field(default_factory=lambda: [128, 128])
    projector_bn: bool = True
    projector_last_bias: bool = False


@dataclass(frozen=True)
class ObjectiveConfig:
    """``name`` selects the objective; ``params`` are its typed hyperparameters (``ssl_ray.config.hparams``),
    which its constructor receives as they are."""

    name: str = "vicreg"
    params: Hparams = field(default_factory=VICRegHparams)

    def __post_init__(self) -> None:
        if type(self.params) is not hparams_class(self.name):
            raise ConfigError(
                f"objective {self.name!r} takes {hparams_class(self.name).__name__}, got {type(self.params).__name__}"
            )

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ObjectiveConfig":
        """``{name: vicreg, lam: 10}`` -> ``ObjectiveConfig('vicreg', VICRegHparams(lam=10.0))``: parsed and
        range-checked here, once."""
        d = dict(d)
        name = d.pop("name", cls.name)
        return cls(name=name, params=hparams_class(name).parse(d))

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, **self.params.as_dict()}

    def with_values(self, values: Dict[str, Any]) -> "ObjectiveConfig":
        """A copy with some keys changed (``name`` and hyperparameters). A new ``name`` starts from that
        objective's defaults: the hyperparameters given for one objective never carry over to another."""
        values = dict(values)
        name = values.pop("name", self.name)
        if name != self.name:
            return ObjectiveConfig(name=name, params=hparams_class(name).parse(values))
        self.params.check_keys(values)
        return dataclasses.replace(self, params=dataclasses.replace(self.params, **values))


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 1
    batch_size: int = 256


@dataclass(frozen=True)
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
    # Online readings (ssl_ray/train/online.py): weighted 20-NN accuracy on the probe's validation rows and
    # RankMe, every this many epochs and at the last (0: off); Tune's schedulers and searchers read them.
    online_every: int = 1
    online_memory: int = 500  # labeled memory rows (and at most as many validation queries)

    def __post_init__(self) -> None:
        # YAML (files and --set) reads on/off as booleans
        for key in ("amp", "channels_last", "sync_batchnorm"):
            v = getattr(self, key)
            if isinstance(v, bool):
                object.__setattr__(self, key, "on" if v else "off")

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


@dataclass(frozen=True)
class ProbeConfig:
    """What every kept checkpoint is probed with (``ssl_ray.probes``)."""

    # Target sets: sample, class, superclass, random_<r> (the study's graded randomness, from a target
    # bank), permuted_<r> (a fraction r of the labels permuted: the chance control). None -> sample,
    # class, superclass (where the dataset has superclasses), random_0.0/0.25/0.5/0.75/1.0, permuted_1.0.
    targets: Optional[List[str]] = None
    # Probe families (ssl_ray.probes.scoring.PROBES); None -> all of them.
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
    # MINE (ssl_ray/probes/mine.py): the estimator's defaults, 5 seeds as in the study. It reads I(input; layer +
    # noise), the noise's std mine_noise times the features' RMS distance from their mean (probes/information.py),
    # at mine_epochs (None -> the first, middle and last probed checkpoint; ssl_ray/probes/plan.py).
    mine_seeds: int = 5
    mine_steps: int = 100
    mine_hidden: int = 64
    mine_batch_size: int = 256
    mine_noise: float = 0.5
    mine_epochs: Optional[List[int]] = None
    # Fan-out: resources per Ray task, checkpoints in flight at once (None -> cluster CPUs / num_cpus),
    # and attempts after the first for a task that fails.
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_concurrent: Optional[int] = None
    max_retries: int = 2
    seed: int = 0
    # Which probe values each trial's MLflow run gets: "curated" (the readings a reader compares, at most ~150
    # metrics per run; ssl_ray/probes/curated.py) or "all". Every value is in the run's probes/probes.csv either way.
    mlflow_metrics: str = "curated"


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
    _check_keys(name, cls, raw)
    return cls(**raw)


def _check_keys(name: str, cls: type, keys: Any) -> None:
    """A ConfigError naming the first of ``keys`` that section ``name`` (the dataclass ``cls``) does not have."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(keys) - known)
    if unknown:
        raise ConfigError(f"unknown key {name}.{unknown[0]} (known keys of {name}: {', '.join(sorted(known))})")


@dataclass(frozen=True)
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

    def replace(self, **sections: Dict[str, Any]) -> "ExperimentConfig":
        """A copy with some keys changed, e.g. ``cfg.replace(train={"epochs": 5})`` (the config is frozen): each
        section is ``dataclasses.replace``d, its types kept; an unknown section or key is a ConfigError."""
        changed = {}
        for name, keys in sections.items():
            if name not in _SECTIONS:
                raise ConfigError(f"unknown section {name!r} (known sections: {', '.join(_SECTIONS)})")
            section = getattr(self, name)
            if name == "objective":
                changed[name] = section.with_values(keys)
                continue
            _check_keys(name, type(section), keys)
            changed[name] = dataclasses.replace(section, **keys)
        return dataclasses.replace(self, **changed)

    def with_values(self, values: Dict[str, Any]) -> "ExperimentConfig":
        """A copy with dotted keys changed: ``cfg.with_values({"objective.lam": 10.0, "model.width": 16})``
        (how a trial's searched values are applied to the base)."""
        sections: Dict[str, Dict[str, Any]] = {}
        for key, v in values.items():
            section, _, name = key.partition(".")
            sections.setdefault(section, {})[name] = v
        return self.replace(**sections)


SECTIONS = tuple(_SECTIONS)


# Seeds: a trial's train.seed is below BANK_SEED_BASE; the target bank's classifier draws its initialization and data
# order from BANK_SEED_BASE + the base trial's seed, a stream no trial can use (torch keeps a seed's low 32 bits).
BANK_SEED_BASE = 2**31
TRIAL_DRIVER_CPUS = 0.01  # what each trial's Tune function (which drives its TorchTrainer) reserves
MODES = ("ssl", "supervised")
AMP_MODES = ("auto", "bf16", "off")
SWITCHES = ("auto", "on", "off")
MLFLOW_METRICS = ("curated", "all")  # probe.mlflow_metrics
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_SPREAD", "STRICT_PACK")
