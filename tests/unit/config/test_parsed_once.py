"""The config is parsed once: an objective's hyperparameters are a typed, frozen dataclass from the moment the YAML is
read, their range check has one home (``config.hparams.check_ranges``, called only from ``Hparams.__post_init__``), and
the object the trial receives from Tune's param space is the very object the objective is built with."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from ssl_ray.config import ExperimentConfig, SweepConfig
from ssl_ray.config.hparams import HPARAMS, MMCRHparams, VICRegHparams
from ssl_ray.config.sweep import EXPERIMENT, trial_experiment
from ssl_ray.errors import ConfigError

PKG = Path(__file__).resolve().parents[3] / "ssl_ray"


def calls_of(name: str):
    """``(module path, enclosing function)`` of every call of ``name`` in the package (by attribute or bare name)."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    f = node.func
                    called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                    if called == name:
                        out.append((str(path.relative_to(PKG.parent)), fn.name))
    return out


def test_the_range_check_is_reached_from_one_function_only():
    assert set(calls_of("check_ranges")) == {("ssl_ray/config/hparams.py", "__post_init__")}
    # nothing else checks an objective's hyperparameters: the old per-class range lists and checkers are gone
    from ssl_ray.objectives import OBJECTIVES

    for name in OBJECTIVES:
        cls = OBJECTIVES.get(name)
        assert not any(hasattr(cls, a) for a in ("check_hparams", "nonnegative", "positive", "below_one")), name


BAD = [
    ("from the YAML", lambda: ExperimentConfig.from_dict({"objective": {"name": "vicreg", "lam": -1}})),
    ("a searched value", lambda: ExperimentConfig().with_values({"objective.mu": -2.0})),
    ("a section replaced", lambda: ExperimentConfig().replace(objective={"name": "mmcr", "momentum": 1.0})),
    ("dataclasses.replace", lambda: dataclasses.replace(VICRegHparams(), gamma=0.0)),
    (
        "build_objective's keywords",
        lambda: __import__("ssl_ray.objectives", fromlist=["x"]).build_objective("simclr", temperature=0.0),
    ),
    ("an objective's keywords", lambda: __import__("ssl_ray.objectives.arb", fromlist=["x"]).ARB(groups=0)),
]


@pytest.mark.parametrize("case", [b[0] for b in BAD])
def test_every_way_to_make_hyperparameters_goes_through_that_check(case):
    make = dict(BAD)[case]
    with pytest.raises(ConfigError) as e:
        make()
    frames = [f.name for f in e.traceback]
    assert frames[-2:] == ["__post_init__", "check_ranges"], frames


def test_the_hyperparameters_are_typed_frozen_and_known_to_both_registries():
    from ssl_ray.objectives import OBJECTIVES

    assert sorted(OBJECTIVES) == sorted(HPARAMS)
    for name in OBJECTIVES:
        assert OBJECTIVES.get(name).Hparams is HPARAMS[name], name
    p = ExperimentConfig.from_dict({"objective": {"name": "vicreg", "lam": 10}}).objective.params
    assert p == VICRegHparams(lam=10.0) and type(p.lam) is float  # YAML's 10 is the float the field declares
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lam = 3.0
    with pytest.raises(ConfigError, match="unknown hyperparameter objective.temperature for 'vicreg'") as e:
        ExperimentConfig.from_dict({"objective": {"name": "vicreg", "temperature": 0.1}})
    assert "it is simclr's" in str(e.value) and "--search objective.temperature=" in str(e.value)  # where it belongs
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict({"objective": {"name": "vicreg", "tmperature": 0.1}})
    assert "it is" not in str(e.value)  # a typo belongs to no objective
    with pytest.raises(ConfigError, match="finite number"):
        MMCRHparams(lam=float("nan"))
    # a new objective name starts from that objective's defaults: another objective's values never carry over
    assert ExperimentConfig().with_values(
        {"objective.lam": 3.0, "objective.name": "mmcr"}
    ).objective.params == MMCRHparams(lam=3.0)
    assert ExperimentConfig().with_values({"objective.name": "mmcr"}).objective.params == MMCRHparams()


def test_the_trial_receives_from_tunes_param_space_the_object_its_objective_is_built_with():
    from ray import tune

    from ssl_ray.objectives import objective_from_config
    from ssl_ray.sweep.space import param_space
    from ssl_ray.sweep.trainer import make_trainer
    from ssl_ray.validation import validate_sweep

    cfg = validate_sweep(
        SweepConfig.from_dict({"base": {"train": {"epochs": 2}}, "search_space": {"objective.lam": [10, 25]}})
    )
    space = param_space(cfg)
    assert space[EXPERIMENT] is cfg.base and isinstance(space["objective"]["lam"], dict)  # Tune's grid_search
    assert space["objective"]["lam"] == tune.grid_search([10, 25])
    for lam in (10, 25):
        tune_config = {EXPERIMENT: space[EXPERIMENT], "objective": {"lam": lam}}  # what Tune hands the trial
        exp = trial_experiment(tune_config, cfg.dims())
        assert exp.objective.params == VICRegHparams(lam=float(lam)) and exp.train == cfg.base.train
        trainer = make_trainer(
            exp, name="t", storage_path="/nonexistent", mlflow_uri="sqlite:////nonexistent.db", mlflow_run_id="r"
        )
        handed = trainer.train_loop_config["experiment"]
        assert handed is exp  # the worker receives the typed config itself (Ray pickles it to each worker)
        assert objective_from_config(handed.objective).params is exp.objective.params  # never parsed again
    assert cfg.base.objective.params == VICRegHparams()  # the base object is untouched by the trials


def test_no_from_dict_on_the_path_from_tune_to_the_objective():
    """The functions a trial's config passes through, from Tune's param space to the objective's constructor."""
    path = {
        "ssl_ray/sweep/space.py": {"param_space"},
        "ssl_ray/sweep/trial.py": {"run_trial"},
        "ssl_ray/config/sweep.py": {"trial_experiment", "searched_values"},
        "ssl_ray/config/schema.py": {"with_values", "replace"},
        "ssl_ray/sweep/trainer.py": {"make_trainer"},
        "ssl_ray/train/loop.py": {"train_loop_per_worker", "build"},
        "ssl_ray/objectives/__init__.py": {"objective_from_config"},
        "ssl_ray/objectives/base.py": {"__init__"},
    }
    seen = {}
    for rel, names in path.items():
        tree = ast.parse((PKG.parent / rel).read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef) and fn.name in names:
                seen.setdefault(rel, set()).add(fn.name)
                called = {
                    n.func.attr for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                }
                assert not called & {"from_dict", "from_yaml", "load_yaml_mapping"}, (rel, fn.name)
    assert seen == path  # every function of the path was found (a rename must update this test)
    # the trial's config is made from the typed base only: a dict there is refused, not parsed
    with pytest.raises(TypeError):
        trial_experiment({EXPERIMENT: ExperimentConfig().to_dict()}, ())
