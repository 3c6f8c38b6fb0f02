"""A sweep's search space as Ray Tune domains."""

from __future__ import annotations

from typing import Any, Dict

from ray import tune

from ssl_ray.config import SearchDim, SweepConfig, set_path


def to_tune(dim: SearchDim) -> Any:
    """``grid`` -> ``tune.grid_search``; ``choice``/``uniform``/``loguniform``/``randint`` -> the Tune sampler."""
    if dim.kind == "grid":
        return tune.grid_search(dim.values)
    return {"choice": lambda v: tune.choice(v), "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(*v)}[dim.kind](dim.values)


def param_space(cfg: SweepConfig) -> Dict[str, Any]:
    """The Ray Tune param space: the full (validated, normalized) base config with searched leaves as Tune domains."""
    space = cfg.base.to_dict()
    for dim in cfg.dims():
        set_path(space, dim.key, to_tune(dim))
    return space
