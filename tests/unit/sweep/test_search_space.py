"""The search space in each engine's terms: a coefficient of one objective is proposed only in that
objective's trials (Optuna's define-by-run, ConfigSpace's conditions), and a trial's config drops it
elsewhere whatever the searcher proposed (grid and random search sample every key)."""

import optuna
import pytest

from ssl_ray.config import SweepConfig
from ssl_ray.config.hparams import BarlowHparams, SimCLRHparams
from ssl_ray.config.sweep import EXPERIMENT, SAMPLERS, searched_values, trial_experiment
from ssl_ray.sweep.search import describe, search_algorithm, trial_scheduler
from ssl_ray.sweep.space import OptunaSpace, config_space, param_space

SPACE = {
    "objective.name": {"choice": ["vicreg", "simclr", "barlow"]},
    "model.width": {"choice": [8, 16]},
    "objective.lam": {"loguniform": [0.1, 100.0], "when": {"objective.name": "vicreg"}},
    "objective.temperature": {"loguniform": [0.02, 5.0], "when": {"objective.name": ["simclr"]}},
}


def sweep(**kw):
    return SweepConfig.from_dict({"base": {"objective": {"name": "vicreg"}}, "search_space": SPACE, **kw})


def test_optuna_proposes_a_coefficient_only_with_its_objective():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = OptunaSpace(sweep().dims())
    seen = set()
    for _ in range(40):
        t = study.ask()
        space(t)
        p = t.params
        seen.add(p["objective/name"])
        assert ("objective/lam" in p) == (p["objective/name"] == "vicreg")
        assert ("objective/temperature" in p) == (p["objective/name"] == "simclr")
        if "objective/lam" in p:
            assert 0.1 <= p["objective/lam"] <= 100.0
        study.tell(t, 0.5)
    assert seen == {"vicreg", "simclr", "barlow"}


def test_configspace_conditions():
    cs = config_space(sweep().dims(), seed=0)
    for c in cs.sample_configuration(50):
        d = dict(c)
        assert ("objective/lam" in d) == (d["objective/name"] == "vicreg")
        assert ("objective/temperature" in d) == (d["objective/name"] == "simclr")


def test_a_trials_config_drops_inactive_keys_and_keeps_the_base_typed():
    cfg = sweep()
    proposed = {
        EXPERIMENT: cfg.base,
        "objective": {"name": "simclr", "lam": 3.0, "temperature": 0.1},
        "model": {"width": 8},
    }
    assert searched_values(proposed, cfg.dims()) == {
        "objective.name": "simclr",
        "model.width": 8,
        "objective.temperature": 0.1,
    }
    exp = trial_experiment(proposed, cfg.dims())
    assert exp.objective.params == SimCLRHparams(temperature=0.1)  # lam is VICReg's: dropped
    assert exp.model.width == 8 and exp.model.depth == cfg.base.model.depth
    base = cfg.base.with_values({"objective.lam": 25.0, "model.width": 32})
    out = trial_experiment(
        {**proposed, EXPERIMENT: base, "objective": {"name": "vicreg", "temperature": 0.1}}, cfg.dims()
    )
    assert out.objective.params.lam == 25.0  # the base's value stands where the key is not searched
    # a searched value of another objective never reaches this one: the trial starts from mmcr's defaults
    other = base.with_values({"objective.lam": 7.0})
    assert (
        trial_experiment({EXPERIMENT: other, "objective": {"name": "barlow"}}, cfg.dims()).objective.params
        == BarlowHparams()
    )
    import numpy as np

    out = trial_experiment(
        {
            EXPERIMENT: cfg.base,
            "objective": {"name": "vicreg", "lam": np.float64(2.5)},
            "model": {"width": np.int64(16)},
        },
        cfg.dims(),
    )
    assert type(out.objective.params.lam) is float and type(out.model.width) is int
    with pytest.raises(TypeError, match="ExperimentConfig"):
        trial_experiment({EXPERIMENT: cfg.base.to_dict()}, cfg.dims())  # a dict is never parsed on the trial's path


def test_validation_sees_each_conditional_trial_once():
    combos = sweep().searched_combinations()
    assert all(("objective.lam" in s) == (s["objective.name"] == "vicreg") for s in combos)
    assert len(combos) == len({repr(sorted(s.items())) for s in combos})
    # vicreg x 2 widths x 2 lam ends + simclr x 2 x 2 temperature ends + barlow x 2
    assert len(combos) == 4 + 4 + 2


def test_engines_built_from_the_settings():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
    from ray.tune.schedulers.hb_bohb import HyperBandForBOHB
    from ray.tune.search.bohb import TuneBOHB
    from ray.tune.search.optuna import OptunaSearch

    assert isinstance(search_algorithm(sweep(search_alg="optuna")), OptunaSearch)
    assert isinstance(search_algorithm(sweep(search_alg="bohb")), TuneBOHB)
    assert search_algorithm(sweep()) is None
    assert isinstance(trial_scheduler(sweep(search_alg="bohb")), HyperBandForBOHB)
    assert isinstance(trial_scheduler(sweep(scheduler="asha")), ASHAScheduler)
    assert isinstance(trial_scheduler(sweep()), FIFOScheduler)
    pbt = SweepConfig.from_dict({"search_space": {"optim.lr": {"loguniform": [1e-4, 1e-2]}}, "scheduler": "pbt"})
    assert isinstance(trial_scheduler(pbt), PopulationBasedTraining)
    # random search samples a list as a choice; grid search crosses it
    space = param_space(SweepConfig.from_dict({"search_space": {"model.width": [8, 16]}, "search_alg": "random"}))
    assert type(space["model"]["width"]).__name__ == "Categorical"
    assert describe(sweep(search_alg="bohb")) == {
        "search_alg": "bohb",
        "scheduler": "hyperband_for_bohb",
        "scheduler_metric": "online/knn_val",
        "scheduler_mode": "max",
        "search_seed": "0",
    }
    assert sweep(scheduler_metric="train_loss").metric_mode() == "min"


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_has_each_engines_form(sampler):
    """Every sampler of the one list (``ssl_ray.config.sweep.SAMPLERS``) becomes a Tune domain, and every one
    but ``grid`` (which Optuna and BOHB refuse) an Optuna and a ConfigSpace parameter, in its range."""
    from ssl_ray.config import SearchDim
    from ssl_ray.sweep.space import to_tune

    values = {"grid": [1, 2], "choice": [1, 2], "randint": [1, 5]}.get(sampler, [0.1, 1.0])
    dim = SearchDim.parse("optim.lr", values if sampler == "grid" else {sampler: values})
    assert dim.kind == sampler and to_tune(dim) is not None
    if sampler == "grid":
        return
    t = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    OptunaSpace([dim])(t)
    v = t.params["optim/lr"]
    assert (v in values) if sampler == "choice" else values[0] <= v <= values[1]
    hp = config_space([dim], seed=0)["optim/lr"]
    assert hp.sample_value() in values if sampler == "choice" else values[0] <= hp.sample_value() <= values[1]
