"""Validation at the edge: every value of a sweep checked once, before Ray starts, by asking its owner.

The config package knows the shape of a config; whether a name exists and values work together is
asked of the package that owns them -- the dataset, augmentation, loader, backbone, objective,
optimizer and probe registries, the checkpoint reader, the tracking store. :func:`validate_sweep`
returns the *normalized*, frozen sweep (e.g. ``train.init_checkpoint=<dir>/state.pt`` becomes the
directory); that is what the tuner, each trial and each worker receive, so none of them validates again.
Every fault is one :class:`~ssl_ray.errors.ConfigError` line naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ssl_ray.config import (
    AMP_MODES,
    BANK_SEED_BASE,
    MODES,
    PLACEMENT_STRATEGIES,
    SWITCHES,
    ExperimentConfig,
    SweepConfig,
    check_choice,
    check_int,
    check_number,
    check_sweep_name,
)
from ssl_ray.config.checks import MAX_CPUS, MAX_EPOCHS, MAX_TRIALS
from ssl_ray.config.io import PATH_KEYS
from ssl_ray.errors import ConfigError
from ssl_ray.sweep.checks import check_fits, check_ray_address, check_samplers, check_search, check_storage


def validate_sweep(sweep: SweepConfig) -> SweepConfig:
    """Check the sweep's own settings and every trial its search space yields; return it normalized."""
    check_sweep_name(sweep.name)
    check_int("num_samples", sweep.num_samples, lo=1, hi=MAX_TRIALS)
    for key in ("max_concurrent_trials", "num_cpus"):
        if getattr(sweep, key) is not None:
            check_int(key, getattr(sweep, key), lo=1, hi=MAX_TRIALS if key == "max_concurrent_trials" else MAX_CPUS)
    if sweep.address is not None and (not isinstance(sweep.address, str) or not sweep.address.strip()):
        raise ConfigError(f"address must be a Ray address (e.g. 'auto' or ray://host:10001), got {sweep.address!r}")
    for key in ("storage_path", "mlflow_uri"):
        if getattr(sweep, key) is not None and not isinstance(getattr(sweep, key), str):
            raise ConfigError(f"{key} must be a string, got {getattr(sweep, key)!r}")
    if sweep.address is not None:
        check_ray_address(sweep.address)
    check_storage(sweep.resolved_storage())
    check_samplers(sweep)
    n_trials = len(sweep.trial_list())
    if n_trials > MAX_TRIALS:
        raise ConfigError(f"the search space makes {n_trials} trials; at most {MAX_TRIALS} in one sweep")
    if not isinstance(sweep.report, bool):
        raise ConfigError(f"report must be true or false, got {sweep.report!r}")
    check_search(sweep)
    check_int("asha_grace_period", sweep.asha_grace_period, lo=1, hi=MAX_EPOCHS)
    check_number("asha_reduction_factor", sweep.asha_reduction_factor, lo=1.0, strict=True)
    from ssl_ray.uris import check_tracking_uri

    check_tracking_uri(sweep.resolved_mlflow_uri())
    _check_bank_is_shared(sweep)
    base = normalized(sweep.base)
    # Every trial the search space yields must be valid; the base alone is never run when a searched key
    # overrides it (e.g. base objective vicreg, searched objective.name=[mmcr]). A local Ray instance has a
    # known size: a trial that can never fit would wait forever.
    local_cpus = None if sweep.address else (sweep.num_cpus or os.cpu_count() or 1)
    for searched in sweep.searched_combinations():
        try:
            exp = validate_experiment(base.with_values(searched))
            check_fits(exp, local_cpus)
        except ConfigError as e:  # name the trial when the fault lies in a section that the search changes
            blamed = any(f"{k.split('.')[0]}." in str(e) for k in searched)
            where = f" (in the trial with {', '.join(f'{k}={v}' for k, v in searched.items())})" if blamed else ""
            raise ConfigError(f"{e}{where}") from None
    return sweep.replace(base=base)


def _check_bank_is_shared(sweep: SweepConfig) -> None:
    """A sweep trains one target bank on the base dataset; every trial must probe that dataset."""
    from ssl_ray.probes.target_names import default_targets
    from ssl_ray.probes.targets import needs_bank

    p = sweep.base.probe
    if p.target_bank is not None or not needs_bank(p.targets or default_targets(False)):
        return
    for key in ("data.dataset", "data.data_root"):
        if key in sweep.search_space:
            raise ConfigError(
                f"{key} is searched, but a sweep builds one target bank (for the random_<r> targets) "
                f"on the base dataset; run one sweep per dataset, give probe.target_bank, or drop "
                f"the random_<r> targets (probe.targets)"
            )


def normalized(cfg: ExperimentConfig) -> ExperimentConfig:
    """Paths made absolute (``~`` expanded), so that every worker on every node reads the same files; a
    ``train.init_checkpoint`` given as ``<dir>/state.pt`` becomes the checkpoint directory."""
    from ssl_ray.checkpoints import checkpoint_dir

    changes: dict = {}
    for key in PATH_KEYS:
        section, name = key.split(".")
        v = getattr(getattr(cfg, section), name)
        if isinstance(v, str) and "://" not in v:
            fixed = str(Path(v).expanduser().resolve())
            fixed = str(checkpoint_dir(fixed)) if key == "train.init_checkpoint" else fixed
            if fixed != v:
                changes.setdefault(section, {})[name] = fixed
    return cfg.replace(**changes) if changes else cfg


def validate_experiment(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check one trial's config, section by section; return it normalized."""
    cfg = normalized(cfg)
    _check_train(cfg)  # train and optim first: the data check divides the training set by their workers and batch
    _check_optim(cfg)
    _check_data(cfg)
    _check_model(cfg)
    _check_objective(cfg)
    from ssl_ray.probes.checks import check_probe

    check_probe(cfg)
    return cfg


def _check_data(cfg: ExperimentConfig) -> None:
    from ssl_ray.data.augment import AUGMENTATIONS
    from ssl_ray.data.containers import IMAGE_SIZES
    from ssl_ray.data.datasets import DATASETS
    from ssl_ray.data.loaders import LOADERS

    d = cfg.data
    AUGMENTATIONS.get(d.augment)
    check_int("data.image_size", d.image_size, *IMAGE_SIZES)
    check_int("data.views", d.views, lo=2, hi=64)
    check_int("data.num_workers", d.num_workers, lo=0, hi=256)
    check_choice("data.loader", d.loader, LOADERS)
    if d.beton is not None:
        from ssl_ray.data.beton import inspect_beton

        num_train = inspect_beton(d.beton).num_samples
    elif d.loader == "ffcv":
        raise ConfigError(
            "data.loader 'ffcv' needs data.beton (--beton): a .beton written by `ssl-ray data write-beton`"
        )
    source = DATASETS.get(d.dataset)
    source.check(d.dataset, d.data_root, d.superclass_map)  # probes read the dataset even when training reads a .beton
    if d.loader == "memory" and not source.in_memory:
        raise ConfigError(
            f"data.loader 'memory' needs an in-memory dataset; {d.dataset!r} is read from image files "
            f"(use 'torchvision' or a .beton)"
        )
    if d.beton is None:
        from ssl_ray.data.datasets import dataset_meta

        num_train = dataset_meta(d.dataset, d.data_root, d.superclass_map)["num_train"]
    per_worker = num_train // cfg.train.workers
    if isinstance(cfg.optim.batch_size, int) and per_worker < cfg.optim.batch_size:
        raise ConfigError(
            f"optim.batch_size {cfg.optim.batch_size} is larger than a worker's share of the training set "
            f"({num_train} images / {cfg.train.workers} worker(s) = {per_worker}): an epoch would have no "
            f"step; lower --batch-size or --workers"
        )


def _check_model(cfg: ExperimentConfig) -> None:
    from ssl_ray.models.backbones import BACKBONES

    m = cfg.model
    BACKBONES.get(m.backbone)
    check_int("model.depth", m.depth, lo=1, hi=64)
    check_int("model.width", m.width, lo=1, hi=8192)
    if not isinstance(m.projector_dims, list) or not m.projector_dims:
        raise ConfigError(f"model.projector_dims must be a non-empty list of positive ints, got {m.projector_dims!r}")
    if len(m.projector_dims) > 8:
        raise ConfigError(f"model.projector_dims: at most 8 layers, got {len(m.projector_dims)}")
    for i, dim in enumerate(m.projector_dims):
        check_int(f"model.projector_dims[{i}]", dim, lo=1, hi=65536)


def _check_objective(cfg: ExperimentConfig) -> None:
    """The hyperparameters were parsed and range-checked when the config was read (``config.hparams``); here the
    objective registry is asked that the name builds, and that it takes the same hyperparameters."""
    from ssl_ray.objectives import OBJECTIVES

    cls = OBJECTIVES.get(cfg.objective.name)
    if cls.Hparams is not type(cfg.objective.params):
        raise ConfigError(
            f"objective {cfg.objective.name!r} takes {cls.Hparams.__name__}, got {type(cfg.objective.params).__name__}"
        )


def _check_optim(cfg: ExperimentConfig) -> None:
    from ssl_ray.train.optim import OPTIMIZERS

    opt = cfg.optim
    OPTIMIZERS.get(opt.optimizer)
    check_number("optim.lr", opt.lr, lo=0.0, strict=True)
    check_number("optim.weight_decay", opt.weight_decay, lo=0.0)
    check_int("optim.warmup_epochs", opt.warmup_epochs, lo=0, hi=cfg.train.epochs)
    check_int("optim.batch_size", opt.batch_size, lo=2, hi=65536)


def _check_train(cfg: ExperimentConfig) -> None:
    t = cfg.train
    check_choice("train.mode", t.mode, MODES)
    check_int("train.epochs", t.epochs, lo=1, hi=MAX_EPOCHS)
    check_int("train.seed", t.seed, lo=0, hi=BANK_SEED_BASE - 1)  # above: the target bank's seed stream
    check_int("train.workers", t.workers, lo=1, hi=4096)
    check_number("train.cpus_per_worker", t.cpus_per_worker, lo=0.0, strict=True, hi=MAX_CPUS)
    check_number("train.gpus_per_worker", t.gpus_per_worker, lo=0.0, hi=64)
    check_int("train.max_failures", t.max_failures, lo=-1, hi=1000)
    check_int("train.online_every", t.online_every, lo=0, hi=MAX_EPOCHS)
    check_int("train.online_memory", t.online_memory, lo=1, hi=1_000_000)
    check_int("train.resume_every", t.resume_every, lo=0, hi=t.epochs)
    check_number("train.collapse_std", t.collapse_std, lo=0.0)
    check_choice("train.amp", t.amp, AMP_MODES)
    check_choice("train.channels_last", t.channels_last, SWITCHES)
    check_choice("train.sync_batchnorm", t.sync_batchnorm, SWITCHES)
    check_choice("train.placement_strategy", t.placement_strategy, PLACEMENT_STRATEGIES)
    if t.sync_batchnorm == "on" and t.gpus() == 0:
        raise ConfigError(
            "train.sync_batchnorm=on needs CUDA workers (train.use_gpu or train.gpus_per_worker): "
            "torch's SyncBatchNorm runs only on GPUs"
        )
    if t.checkpoint_epochs is not None:
        if not isinstance(t.checkpoint_epochs, list):
            raise ConfigError(f"train.checkpoint_epochs must be a list of epochs, got {t.checkpoint_epochs!r}")
        for e in t.checkpoint_epochs:
            check_int("train.checkpoint_epochs[]", e, lo=0, hi=t.epochs)
    if t.init_checkpoint is not None:
        _check_init_checkpoint(cfg)


def _check_init_checkpoint(cfg: ExperimentConfig) -> None:
    """The checkpoint must load (as data) and hold the backbone and projector this run builds."""
    from ssl_ray.checkpoints import CHECKPOINT_FILE, CorruptCheckpoint, checkpoint_dir, load_state

    ckpt_dir = checkpoint_dir(cfg.train.init_checkpoint)
    if not (ckpt_dir / CHECKPOINT_FILE).is_file():
        raise ConfigError(
            f"train.init_checkpoint {cfg.train.init_checkpoint!r}: no such checkpoint "
            f"(a {CHECKPOINT_FILE} or its directory)"
        )
    try:
        saved = load_state(ckpt_dir)
    except CorruptCheckpoint as e:
        raise ConfigError(f"train.init_checkpoint: {e}") from None
    theirs = (saved.get("config") or {}).get("model") or {}
    mine = dataclasses.asdict(cfg.model)
    diff = [
        k
        for k in ("backbone", "depth", "width", "projector_dims")
        if theirs.get(k) != mine[k] and not (k == "depth" and mine["backbone"] != "res")
    ]
    if diff:
        raise ConfigError(
            f"train.init_checkpoint {str(ckpt_dir)!r} holds a different model: "
            + ", ".join(f"model.{k} {theirs.get(k)!r} there, {mine[k]!r} here" for k in diff)
        )
