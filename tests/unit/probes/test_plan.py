"""Which layers and probe families each checkpoint gets (``ssl_ray.probes.plan``), and the keys completeness is
judged against: MINE at three checkpoints by default, the pixel baseline (``input``) at the first only, never
MINE or the information reading on the input itself."""

import pytest

from ssl_ray.config import ExperimentConfig, ProbeConfig
from ssl_ray.errors import ConfigError
from ssl_ray.probes.plan import INPUT_LAYER, families_at, layers_at, mine_epochs
from ssl_ray.probes.scoring import expected_keys, probe_names
from ssl_ray.validation import validate_experiment

SCHEDULE = [0, 1, 2, 4, 8, 16, 20]  # the default run's probed epochs


def test_mine_runs_at_the_first_middle_and_last_checkpoint_unless_told():
    p = ProbeConfig()
    assert mine_epochs(p, SCHEDULE) == [0, 4, 20]
    assert mine_epochs(p, [0, 1, 2]) == [0, 1, 2] and mine_epochs(p, [0, 5]) == [0, 5]
    assert mine_epochs(ProbeConfig(mine_epochs=[2, 16, 99]), SCHEDULE) == [2, 16]
    assert mine_epochs(p, None) is None  # no schedule known: every checkpoint


def test_families_and_layers_per_checkpoint_and_the_keys_they_make():
    p = ProbeConfig()
    fams = probe_names(p)
    assert {"information", "mine", "linear"} <= set(fams)
    assert layers_at(["block1", "block2"], SCHEDULE, 0) == ["block1", "block2", INPUT_LAYER]
    assert layers_at(["block1", "block2"], SCHEDULE, 8) == ["block1", "block2"]
    assert "mine" in families_at(p, fams, SCHEDULE, 4, "block1")
    assert "mine" not in families_at(p, fams, SCHEDULE, 8, "block1") and "information" in families_at(
        p, fams, SCHEDULE, 8, "block1"
    )
    on_input = families_at(p, fams, SCHEDULE, 0, INPUT_LAYER)
    assert "mine" not in on_input and "information" not in on_input and "linear" in on_input
    targets = ["sample", "class", "random_1.0"]
    at0 = expected_keys(targets, layers_at(["block1"], SCHEDULE, 0), fams, p, SCHEDULE, 0)
    at8 = expected_keys(targets, layers_at(["block1"], SCHEDULE, 8), fams, p, SCHEDULE, 8)
    assert "probe/random_1.0/linear_test/input" in at0 and "probe/class/mine/block1" in at0
    assert "probe/class/mi_exact/block1" in at8 and not any("/mine" in k or "/input" in k for k in at8)
    assert "probe/sample/mi_exact/block1" not in at0  # information lives on the clean images only
    assert not any(k.endswith("/input") and ("/mine" in k or "/mi_exact/" in k) for k in at0)


def test_mine_epochs_that_no_checkpoint_keeps_are_refused():
    d = ExperimentConfig().to_dict()
    d["probe"]["mine_epochs"] = [3, 5]
    with pytest.raises(ConfigError, match="probe.mine_epochs"):
        validate_experiment(ExperimentConfig.from_dict(d))
    d["probe"]["mine_epochs"] = [4]
    assert validate_experiment(ExperimentConfig.from_dict(d)).probe.mine_epochs == [4]
