"""A sweep's search space in each engine's terms: Ray Tune domains (grid and random search, PBT's
mutations), an Optuna define-by-run space, a ConfigSpace space (BOHB).

The param space carries the validated base as one typed object, ``config["experiment"]`` (an
:class:`~ssl_ray.config.ExperimentConfig`), beside the searched leaves nested by section. Optuna and BOHB name a
parameter ``section/key``: Ray Tune unflattens a searcher's proposal on ``/``, so ``objective/lam`` lands at
``config["objective"]["lam"]``, beside the base it is merged with. A key with ``when`` is proposed only where
its condition holds (Optuna's define-by-run; ConfigSpace's conditions); with grid or random search it is sampled
everywhere and :func:`ssl_ray.config.sweep.searched_values` leaves it out where the condition fails.
"""

from __future__ import annotations

from typing import Any, Dict, List

from ray import tune

from ssl_ray.config import SearchDim, SweepConfig, set_path
from ssl_ray.config.sweep import EXPERIMENT


def to_tune(dim: SearchDim, lists_as_choice: bool = False) -> Any:
    """``grid`` -> ``tune.grid_search`` (``tune.choice`` for random search); ``choice``/``uniform``/``loguniform``/
    ``randint`` -> the Tune sampler."""
    if dim.kind == "grid":
        return tune.choice(dim.values) if lists_as_choice else tune.grid_search(dim.values)
    return {
        "choice": lambda v: tune.choice(v),
        "uniform": lambda v: tune.uniform(*v),
        "loguniform": lambda v: tune.loguniform(*v),
        "randint": lambda v: tune.randint(*v),
    }[dim.kind](dim.values)


def param_space(cfg: SweepConfig) -> Dict[str, Any]:
    """The Ray Tune param space: the validated, normalized base config as it is (``config["experiment"]``), and
    for grid and random search the searched leaves as Tune domains; Optuna and BOHB propose those leaves
    themselves. A trial's typed config is :func:`ssl_ray.config.sweep.trial_experiment` of its Tune config."""
    space: Dict[str, Any] = {EXPERIMENT: cfg.base}
    if cfg.search_alg in ("grid", "random"):
        for dim in cfg.dims():
            set_path(space, dim.key, to_tune(dim, lists_as_choice=cfg.search_alg == "random"))
    return space


def pbt_mutations(dims: List[SearchDim]) -> Dict[str, Any]:
    """PBT's ``hyperparam_mutations``, nested as the config is: a perturbed key is resampled from its range."""
    out: Dict[str, Any] = {}
    for d in dims:
        section, name = d.key.split(".")
        out.setdefault(section, {})[name] = to_tune(d)
    return out


def engine_name(key: str) -> str:
    return key.replace(".", "/")


class OptunaSpace:
    """Optuna's define-by-run space over the sweep's dimensions, in their order (a class, not a closure, so
    that Ray Tune can pickle the searcher with the experiment's state)."""

    def __init__(self, dims: List[SearchDim]):
        self.dims = dims

    def __call__(self, trial) -> None:
        chosen: Dict[str, Any] = {}
        for d in self.dims:
            if not d.active(chosen):
                continue
            name, v = engine_name(d.key), d.values
            if d.kind == "choice":
                chosen[d.key] = trial.suggest_categorical(name, v)
            elif d.kind == "randint":
                chosen[d.key] = trial.suggest_int(name, v[0], v[1] - 1)
            else:
                chosen[d.key] = trial.suggest_float(name, float(v[0]), float(v[1]), log=d.kind == "loguniform")
        return None


def config_space(dims: List[SearchDim], seed: int):
    """The ConfigSpace space BOHB samples, with each ``when`` as a condition on its parent keys."""
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=seed)
    hps = {}
    for d in dims:
        name, v = engine_name(d.key), d.values
        if d.kind == "choice":
            hp = CS.CategoricalHyperparameter(name, v)
        elif d.kind == "randint":
            hp = CS.UniformIntegerHyperparameter(name, v[0], v[1] - 1)
        else:
            hp = CS.UniformFloatHyperparameter(name, float(v[0]), float(v[1]), log=d.kind == "loguniform")
        cs.add(hp)
        hps[d.key] = hp
        conds = [CS.InCondition(hp, hps[k], vals) for k, vals in d.when.items()]
        if conds:
            cs.add(conds[0] if len(conds) == 1 else CS.AndConjunction(*conds))
    return cs
