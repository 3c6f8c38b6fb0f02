"""What the probes answer about a config's ``probe`` section, for validation at the edge (``ssl_ray.validation``):
the targets, probe families and layers exist, the sample target's sizes, a given target bank fits the dataset, and
every count and seed has its bound. One ConfigError line naming the key and the value."""

from __future__ import annotations

from ssl_ray.config import MLFLOW_METRICS, ExperimentConfig, check_choice, check_int, check_names, check_number
from ssl_ray.config.checks import MAX_CPUS, MAX_EPOCHS, MAX_SEED
from ssl_ray.errors import ConfigError


def check_layers(cfg: ExperimentConfig) -> None:
    """probe.layers must be taps of the model; they do not depend on the width, so a narrow copy answers."""
    from ssl_ray.models.build import model_from_config

    taps = model_from_config(cfg.replace(model={"width": 4}, train={"mode": "ssl"})).taps
    unknown = [name for name in cfg.probe.layers if name not in taps]
    if unknown:
        raise ConfigError(f"probe.layers: {unknown[0]!r} is not a layer of this model (its layers: {', '.join(taps)})")


def check_probe(cfg: ExperimentConfig) -> None:
    """Every ``probe.*`` value, asked of what owns it: the probe, target, augmentation and dataset registries, the
    model's taps, a given target bank against the dataset's splits."""
    from ssl_ray.data.augment import AUGMENTATIONS
    from ssl_ray.data.datasets import DATASETS, dataset_meta, split_sizes
    from ssl_ray.probes.scoring import PROBES
    from ssl_ray.probes.target_bank import TargetBank
    from ssl_ray.probes.target_names import default_targets, parse_targets
    from ssl_ray.probes.targets import needs_bank

    d, p = cfg.data, cfg.probe
    for key in ("targets", "metrics", "layers"):
        check_names(f"probe.{key}", getattr(p, key))
    if p.layers is not None:
        check_layers(cfg)
    for name in p.metrics or []:
        PROBES.get(name)
    kinds = [kind for kind, _ in parse_targets(p.targets or [])]
    if "superclass" in kinds and not dataset_meta(d.dataset, d.data_root, d.superclass_map)["num_superclasses"]:
        raise ConfigError(
            f"probe target 'superclass': dataset {d.dataset!r} has no superclass labels"
            + (" (give data.superclass_map)" if DATASETS.get(d.dataset).takes_superclass_map else "")
        )
    for key in ("sample_images", "sample_train_views", "sample_test_views"):
        if getattr(p, key) is not None:
            check_int(
                f"probe.{key}",
                getattr(p, key),
                lo=2 if key == "sample_images" else 1,
                hi=100000 if key == "sample_images" else 64,
            )
    if p.sample_augment is not None:
        AUGMENTATIONS.get(p.sample_augment)
    if p.target_bank is not None and needs_bank(p.targets or default_targets(False)):
        TargetBank.load(p.target_bank).check_dataset(
            *split_sizes(d.dataset, d.data_root, d.superclass_map), f"target bank {p.target_bank}"
        )
    check_int("probe.bank_epochs", p.bank_epochs, lo=5, hi=MAX_EPOCHS)
    check_number("probe.val_fraction", p.val_fraction, lo=0.0, strict=True)
    if p.val_fraction >= 0.5:
        raise ConfigError(f"probe.val_fraction must be < 0.5 (the probes fit on the rest), got {p.val_fraction!r}")
    for key, lo, hi in (
        ("max_train_images", 10, 10**7),
        ("max_test_images", 10, 10**7),
        ("linear_max_iter", 1, 10**5),
        ("mine_seeds", 1, 100),
        ("mine_steps", 1, 10**6),
        ("mine_hidden", 1, 8192),
        ("mine_batch_size", 2, 65536),
        ("max_retries", 0, 100),
        ("seed", 0, MAX_SEED),
    ):
        check_int(f"probe.{key}", getattr(p, key), lo=lo, hi=hi)
    check_number("probe.linear_c", p.linear_c, lo=0.0, strict=True)
    check_number("probe.mine_noise", p.mine_noise, lo=0.0, hi=1000.0, strict=True)
    if p.mine_epochs is not None:
        if not isinstance(p.mine_epochs, list) or not p.mine_epochs:
            raise ConfigError(f"probe.mine_epochs must be a non-empty list of epochs, got {p.mine_epochs!r}")
        for e in p.mine_epochs:
            check_int("probe.mine_epochs", e, lo=0, hi=MAX_EPOCHS)
        if not set(p.mine_epochs) & set(cfg.train.checkpoint_schedule()):
            raise ConfigError(
                f"probe.mine_epochs {p.mine_epochs}: no probed checkpoint has these epochs "
                f"(train.checkpoint_epochs keeps {cfg.train.checkpoint_schedule()})"
            )
    check_choice("probe.mlflow_metrics", p.mlflow_metrics, MLFLOW_METRICS)
    check_number("probe.num_cpus", p.num_cpus, lo=0.0, hi=MAX_CPUS)
    check_number("probe.num_gpus", p.num_gpus, lo=0.0, hi=64)
    if p.max_concurrent is not None:
        check_int("probe.max_concurrent", p.max_concurrent, lo=1, hi=100000)
