"""The trial's and the tuner's wiring, without a sweep: how a trial is named, which checkpoints its probes read, how
its MLflow run records its ending and a PBT exploit (a real SQLite store), and what the tuner hands Tune and MLflow."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ssl_ray.config import SweepConfig
from ssl_ray.config.sweep import EXPERIMENT
from ssl_ray.tracking import (
    TAG_PBT_LINEAGE,
    TAG_PBT_PARENT,
    TAG_STATUS,
    TAG_STOP_REASON,
    TrialStatus,
    client,
    get_or_create_parent_run,
    get_or_create_trial_run,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('wiring') / 'mlflow.db'}"
    parent = get_or_create_parent_run(uri, "wiring", "/sweeps/wiring", {}, create=True)
    return uri, parent


def new_run(store, trial_id: str) -> str:
    uri, parent = store
    return get_or_create_trial_run(uri, parent, trial_id, trial_id, {})


def test_a_trial_is_named_by_the_values_that_vary():
    from ssl_ray.sweep.trial import trial_label

    config = {EXPERIMENT: None, "objective": {"name": "vicreg", "lam": 10.0}, "model": {"width": 16}}
    assert trial_label(config, ("objective.lam", "model.width")) == "lam=10 width=16"
    assert trial_label(config, ("objective.name", "objective.temperature")) == "objective=vicreg"  # not searched here
    assert trial_label(config, ()) == ""


def test_the_probes_read_each_probed_epoch_once_the_latest_write_winning():
    from ssl_ray.sweep.trainer import probed_checkpoints

    ck = lambda p: SimpleNamespace(path=p)  # noqa: E731 -- Ray Train's (checkpoint, metrics) pairs, as data
    reported = [
        (ck("/a/0"), {"epoch": 0}),
        (ck("/a/1"), {"epoch": 1, "probed": 0}),
        (ck("/a/2"), {"epoch": 2, "probed": 1}),
        (ck("/b/2"), {"epoch": 2, "probed": 1}),
    ]  # epoch 2 written again after a fallback
    assert probed_checkpoints(reported) == [(0, "/a/0"), (2, "/b/2")]


def test_a_finished_trial_keeps_no_stop_reason_and_a_health_stop_stays(store):
    from ssl_ray.sweep.trial import record_end

    uri, _ = store
    c = client(uri)
    crashed_then_resumed = new_run(store, "t_resumed")
    c.set_tag(crashed_then_resumed, TAG_STATUS, TrialStatus.RUNNING.value)
    c.set_tag(crashed_then_resumed, TAG_STOP_REASON, "RuntimeError: worker died")
    assert record_end(c, crashed_then_resumed) == TrialStatus.FINISHED
    run = c.get_run(crashed_then_resumed)
    assert run.info.status == "FINISHED" and run.data.tags[TAG_STATUS] == "finished"
    assert (
        TAG_STOP_REASON not in run.data.tags
        and run.data.tags[TAG_STOP_REASON + ".earlier"] == "RuntimeError: worker died"
    )

    diverged = new_run(store, "t_diverged")
    c.set_tag(diverged, TAG_STATUS, TrialStatus.DIVERGED.value)
    c.set_tag(diverged, TAG_STOP_REASON, "loss is nan at epoch 3")
    assert record_end(c, diverged) == TrialStatus.DIVERGED
    run = c.get_run(diverged)
    assert run.info.status == "FAILED" and run.data.tags[TAG_STOP_REASON] == "loss is nan at epoch 3"


def test_an_exploit_is_recorded_once_even_when_the_trial_restarts(store):
    from ssl_ray.sweep.trial import SweepContext, record_exploit

    uri, parent = store
    c = client(uri)
    donor_run, run = new_run(store, "t_donor"), new_run(store, "t_taker")
    ctx = SweepContext("/sweeps/wiring", uri, parent)
    donor = {"trial_id": "t_donor", "epoch": 4, "path": "/x"}
    record_exploit(c, run, donor, ctx)
    record_exploit(c, run, donor, ctx)  # the same exploit, started again by a resume
    record_exploit(c, run, {**donor, "epoch": 6}, ctx)
    tags = c.get_run(run).data.tags
    assert tags[TAG_PBT_PARENT] == "t_donor"
    assert tags[TAG_PBT_LINEAGE] == f"epoch 4 from t_donor ({donor_run}); epoch 6 from t_donor ({donor_run})"


def test_a_trial_that_reported_nothing_reads_its_last_online_values_from_mlflow(store):
    from ssl_ray.sweep.trial import last_online

    uri, _ = store
    c = client(uri)
    run = new_run(store, "t_online")
    c.log_metric(run, "online/knn_val", 0.5, step=1)
    c.log_metric(run, "online/knn_val", 0.75, step=2)
    assert last_online({"online/knn_val": 0.9, "train_loss": 1.0}, c, run) == {"online/knn_val": 0.9}
    assert last_online({}, c, run) == {"online/knn_val": 0.75}  # restarted at its last epoch: MLflow's latest


def sweep(**kw) -> SweepConfig:
    return SweepConfig.from_dict(
        {
            "base": {"train": {"epochs": 2}},
            "search_space": {
                "objective.lam": [10.0, 25.0],
                "model.width": [8],
                "optim.lr": {"loguniform": [1e-3, 1e-2]},
            },
            **kw,
        }
    )


def test_the_tuner_hands_tune_the_typed_base_and_only_the_searched_leaves():
    from ray import tune

    from ssl_ray.sweep.space import param_space, pbt_mutations

    grid = param_space(sweep())
    assert set(grid) == {EXPERIMENT, "objective", "model", "optim"} and grid[EXPERIMENT] is not None
    assert grid["objective"]["lam"] == tune.grid_search([10.0, 25.0])
    assert isinstance(grid["optim"]["lr"], tune.search.sample.Float)
    random = param_space(sweep(search_alg="random"))
    assert isinstance(random["objective"]["lam"], tune.search.sample.Categorical)  # a list is a choice there
    assert set(param_space(sweep(search_alg="optuna"))) == {EXPERIMENT}  # Optuna proposes the leaves itself
    assert set(pbt_mutations(sweep().dims())) == {"objective", "model", "optim"}


def test_the_sweeps_run_records_what_is_searched_and_what_is_not():
    from ssl_ray.sweep.tuner import parent_params, varied_keys

    cfg = sweep()
    p = parent_params(cfg)
    assert p["base.objective.lam"] == "searched" and p["base.model.width"] == "searched"
    assert p["base.objective.mu"] == 25.0 and p["base.train.epochs"] == 2
    assert p["search.objective.lam"] == "[10.0, 25.0]" and p["search_alg"] == "grid"
    assert varied_keys(cfg) == ("objective.lam", "optim.lr")  # width takes one value: it names no trial


def test_only_the_closing_report_lists_the_checkpoints_and_they_read_back():
    import json

    from ssl_ray.sweep.trial import CHECKPOINTS, is_closing_report, reported_checkpoints

    closing = {"epoch": 4, CHECKPOINTS: json.dumps([(0, "/t/epoch_0000"), (4, "/t/epoch_0004")])}
    assert is_closing_report(closing) and not is_closing_report({"epoch": 3, "online/knn_val": 0.5})
    assert reported_checkpoints(closing) == [(0, "/t/epoch_0000"), (4, "/t/epoch_0004")]
