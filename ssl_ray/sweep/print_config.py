"""``--print-config``: a sweep's every key with its value (a password in the store's URI masked), the names a config
may use, each objective's defaults, and the trials Ray Tune would run. Starts nothing."""

from __future__ import annotations

from typing import List

from ssl_ray.config import SECTIONS, SweepConfig, dump_yaml


def print_config(cfg: SweepConfig, stream) -> None:
    """Every key with its value, then the trials Ray Tune would run."""
    d = cfg.to_dict()
    d["base"] = {k: d["base"][k] for k in SECTIONS}
    from ssl_ray.uris import mask_uri

    d.update(storage_path=str(cfg.resolved_storage()), mlflow_uri=mask_uri(cfg.resolved_mlflow_uri()))
    print(dump_yaml(d).rstrip(), file=stream)
    from ssl_ray.objectives import OBJECTIVES

    for line in known_names():
        print(f"# {line}", file=stream)

    searched = [v for d in cfg.dims() if d.key == "objective.name" for v in d.values]
    names = dict.fromkeys([cfg.base.objective.name, *searched])
    for name in (n for n in names if isinstance(n, str) and n in OBJECTIVES):
        print(
            f"# objective {name}: defaults {OBJECTIVES.get(name).Hparams.defaults()} (a value above or searched wins)",
            file=stream,
        )
    trials = cfg.trial_list()
    if cfg.search_alg != "grid" and len(trials) > 1:  # every trial is a proposal from the same space
        print(f"# trials: {len(trials)}, each proposed by {cfg.search_alg} search from", file=stream)
        trials = trials[:1]
    else:
        print(f"# trials: {len(trials)}", file=stream)
    print(
        dump_yaml({"trials": trials}, flow=True).rstrip() if cfg.search_space else "trials: [{}]  # the base alone",
        file=stream,
    )


def known_names() -> List[str]:
    """One line per registry: the names a config may use (the registries are the only lists of names)."""
    from ssl_ray.data import datasets  # noqa: F401  (registers every dataset)
    from ssl_ray.data.containers import DATASETS
    from ssl_ray.data.protocols import PROTOCOLS
    from ssl_ray.models.backbones import BACKBONES
    from ssl_ray.objectives import OBJECTIVES
    from ssl_ray.probes.scoring import PROBES
    from ssl_ray.train.optim import OPTIMIZERS

    return [
        f"known {r.kind}s: {', '.join(r.names())}"
        for r in (DATASETS, PROTOCOLS, BACKBONES, OBJECTIVES, OPTIMIZERS, PROBES)
    ]
