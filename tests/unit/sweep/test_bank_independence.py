"""The target bank's classifier shares nothing random with the SSL trials it measures: every initial weight
tensor and every epoch's data order come from its own seed stream (``ssl_ray.sweep.bank``). Built through the
worker's own ``build`` (the code that initializes a trial), for the default recipe's sweep run with 3 seeds, at
both of its widths and at the bank's."""

import copy

import numpy as np
import pytest
import torch
from conftest import ROOT

from ssl_ray.config import BANK_SEED_BASE, ExperimentConfig, SweepConfig, set_path
from ssl_ray.data.loaders import epoch_order
from ssl_ray.errors import ConfigError
from ssl_ray.sweep.bank import bank_config
from ssl_ray.sweep.recipe import recipe
from ssl_ray.train.loop import build
from ssl_ray.validation import validate_experiment


def initial_weights(cfg: ExperimentConfig) -> dict:
    return build(cfg, 0, 1, torch.device("cpu")).model.state_dict()


def shared_tensors(a: dict, b: dict) -> list:
    """Names of the randomly initialized tensors (not a constant like BatchNorm's ones and zeros) equal in both."""
    return [
        k
        for k, v in a.items()
        if k in b and v.shape == b[k].shape and v.numel() > 1 and v.float().std() > 0 and torch.equal(v, b[k])
    ]


def sweep_trials(seeds=(0, 1, 2)):
    raw = recipe(str(ROOT / "configs" / "vicreg_digits.yaml"))
    sweep = SweepConfig.from_dict({**raw, "search_space": {**raw["search_space"], "train.seed": list(seeds)}})
    trials = []
    for values in sweep.trial_list():
        d = copy.deepcopy(sweep.base.to_dict())
        for k, v in values.items():
            set_path(d, k, v)
        trials.append(validate_experiment(ExperimentConfig.from_dict(d)))
    return sweep.base, trials


def test_no_trial_shares_an_initial_weight_tensor_or_a_data_order_with_the_bank():
    base, trials = sweep_trials()
    bank = bank_config(validate_experiment(base))
    assert bank.train.seed == BANK_SEED_BASE + base.train.seed
    widths = {t.model.width for t in trials}
    assert widths == {16, 32} and bank.model.width in widths  # the bank's width is one the trials train at
    theirs = initial_weights(bank)
    n = 1437  # the digits' train split
    for trial in trials:
        mine = initial_weights(trial)
        assert not shared_tensors(theirs, mine), (trial.model.width, trial.train.seed)
        for epoch in range(bank.train.epochs):
            assert not torch.equal(
                epoch_order(n, bank.train.seed, epoch, 0, 1), epoch_order(n, trial.train.seed, epoch, 0, 1)
            )
    # the check can fail: with the trials' own seed (how the bank was built before), the classifier's initial
    # weights equal the trial's at the same width, tensor for tensor
    same_seed = bank.replace(train={"seed": base.train.seed})
    twin = next(t for t in trials if t.model.width == bank.model.width and t.train.seed == base.train.seed)
    assert len(shared_tensors(initial_weights(same_seed), initial_weights(twin))) > 10


def test_trial_seeds_stay_below_the_banks_stream():
    d = ExperimentConfig().to_dict()
    d["train"]["seed"] = BANK_SEED_BASE
    with pytest.raises(ConfigError, match="train.seed"):
        validate_experiment(ExperimentConfig.from_dict(d))
    d["train"]["seed"] = BANK_SEED_BASE - 1
    assert validate_experiment(ExperimentConfig.from_dict(d)).train.seed == BANK_SEED_BASE - 1
    # torch keeps a seed's low 32 bits: the stream is disjoint in what torch actually uses
    assert np.uint32(BANK_SEED_BASE + 5) != np.uint32(5)
