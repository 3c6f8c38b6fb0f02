"""Every checked-in sweep recipe (configs/*.yaml) is valid in every trial it yields, on data written in the
datasets' true formats; and the config package is typed, frozen and validated once."""

from pathlib import Path

import pytest
from conftest import ROOT

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_the_recipes_are_there():
    names = {p.stem for p in CONFIGS}
    assert {
        "vicreg_digits",
        "objectives_digits",
        "supervised_digits",
        "cifar100_res_grid",
        "imagenet_resnet50",
    } <= names


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory):
    from fakedata import write_cifar100, write_imagefolder

    root = tmp_path_factory.mktemp("data")
    write_cifar100(root)
    write_imagefolder(root / "imagenet", val_name="val")
    return {"cifar100": str(root), "imagenet": str(root / "imagenet")}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_trial_of_every_recipe_is_valid(path, data_roots, tmp_path):
    from ssl_ray.config import SweepConfig
    from ssl_ray.sweep.recipe import recipe
    from ssl_ray.validation import validate_sweep

    raw = recipe(str(path))
    raw["mlflow_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dataset = raw["base"]["data"]["dataset"]
    if dataset in data_roots:
        raw["base"]["data"]["data_root"] = data_roots[dataset]
    import socket

    with socket.socket() as gcs:  # a port that answers, standing in for the cluster's (the address must answer)
        gcs.bind(("127.0.0.1", 0))
        gcs.listen()
        if dataset != "digits":  # a cluster recipe: its size is the cluster's, not this machine's
            raw["address"] = f"ray://127.0.0.1:{gcs.getsockname()[1]}"
            # the stand-in data has a few images: a batch that fits them (the batch check needs one step)
            raw["base"]["optim"]["batch_size"], raw["base"]["train"]["workers"] = 2, 1
        cfg = validate_sweep(SweepConfig.from_dict(raw))
    trials = cfg.trial_list()
    combos = cfg.searched_combinations()
    if cfg.search_alg == "grid" and all(d.kind == "grid" for d in cfg.dims()):
        assert trials and len(trials) == len(combos)  # a grid validates each of its trials
    else:  # a search validates every combination of its choices and range ends; it runs num_samples proposals
        assert len(trials) == cfg.num_samples and len(combos) > 1
    if dataset == "imagenet":  # the layers it probes are taps of its backbone
        from ssl_ray.models.backbones import build_backbone

        taps = build_backbone("resnet50", width=8).taps
        assert set(cfg.base.probe.layers) <= set(taps), taps


def test_relative_paths_in_a_recipe_are_read_from_its_folder():
    from ssl_ray.sweep.recipe import recipe

    raw = recipe(str(ROOT / "configs" / "vicreg_digits.yaml"))
    assert raw["base"]["data"]["superclass_map"] == str(ROOT / "configs" / "digits_superclasses.txt")
    assert Path(raw["base"]["data"]["superclass_map"]).is_file()


def test_configs_are_frozen_and_validation_returns_the_normalized_copy(tmp_path, monkeypatch):
    import dataclasses

    from ssl_ray.config import ExperimentConfig, SweepConfig
    from ssl_ray.validation import validate_experiment, validate_sweep

    cfg = ExperimentConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3
    changed = cfg.replace(train={"epochs": 3})
    assert changed.train.epochs == 3 and cfg.train.epochs == 20
    # validation returns a normalized copy (a relative path made absolute: every worker on every node reads the same
    # file), frozen too, and leaves the config it was given as it was
    monkeypatch.chdir(ROOT)
    given = cfg.replace(data={"superclass_map": "configs/digits_superclasses.txt"})
    valid = validate_experiment(given)
    absolute = str(ROOT / "configs" / "digits_superclasses.txt")
    assert valid.data.superclass_map == absolute and given.data.superclass_map == "configs/digits_superclasses.txt"
    assert valid.replace(data={"superclass_map": given.data.superclass_map}) == given  # nothing else changed
    with pytest.raises(dataclasses.FrozenInstanceError):
        valid.data.superclass_map = "elsewhere.txt"
    # a sweep's validation: its normalized base, which every trial is made from
    sweep = SweepConfig(base=given, storage_path=str(tmp_path / "sweeps"), mlflow_uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert validate_sweep(sweep).base == valid and sweep.base == given


def test_yaml_on_off_reads_as_the_switch_words():
    from ssl_ray.config import ExperimentConfig

    t = ExperimentConfig.from_dict({"train": {"amp": False, "channels_last": True}}).train
    assert (t.amp, t.channels_last) == ("off", "on")
