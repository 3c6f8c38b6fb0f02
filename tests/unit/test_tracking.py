"""ssl_ray.tracking against a real SQLite store (no mocks): runs are found again by their tags and never made twice,
experiments carry MLflow's kind tag, a read-only command never creates a store, params skip the unset, and metric
writes are idempotent per (key, step) (``ssl_ray.metric_log.MetricWriter``, which tracking's writers use).

One store serves the module (creating one costs a second or two); each test works in experiments of its own."""

import subprocess
import sys
from pathlib import Path

import pytest

from ssl_ray.errors import ConfigError
from ssl_ray.metric_log import MetricWriter
from ssl_ray.tracking import (
    EXPERIMENT_KIND,
    TAG_KIND,
    TAG_PARENT,
    TAG_SWEEP_DIR,
    TAG_TRIAL_ID,
    TrialStatus,
    artifact_root_for,
    child_runs,
    client,
    ensure_experiment,
    existing_store,
    find_bank_run,
    find_trial_run,
    get_or_create_bank_run,
    get_or_create_parent_run,
    get_or_create_trial_run,
    log_missing_params,
    log_params,
    search_by_tag,
    tag_filter,
)

KEY_TAG = "test.bank_key"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """``(uri, client)`` of one SQLite store for the module, in a folder that did not exist."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'deep' / 'er' / 'mlflow.db'}"
    return uri, client(uri)


# -- the store ------------------------------------------------------------------------------------------------


def test_a_read_only_command_never_creates_a_store(tmp_path):
    missing = tmp_path / "nowhere" / "mlflow.db"
    uri = f"sqlite:///{missing}"
    with pytest.raises(ConfigError) as e:
        existing_store(uri, "run 0123abcd")
    message = str(e.value)
    assert message.startswith(f"run 0123abcd: no MLflow store at {missing} ") and "--mlflow-uri" in message
    assert "\n" not in message
    assert not missing.exists() and not missing.parent.exists()  # nothing made where it looked
    with pytest.raises(ConfigError, match=f"^no MLflow store at {missing} "):
        existing_store(uri)  # without a subject: the place alone


def test_an_existing_store_and_a_server_pass_as_they_are(store):
    uri, _ = store  # the fixture's client created the database
    assert existing_store(uri, "x") == uri
    assert existing_store("http://127.0.0.1:5000", "x") == "http://127.0.0.1:5000"  # a server is asked, not looked for


def test_a_store_is_created_with_its_folder_and_its_artifacts_beside_it(store):
    uri, c = store
    db = Path(uri[len("sqlite:///") :])
    assert db.is_file() and db.parent.name == "er"  # the fixture's client made deep/er/ and the database
    exp = c.get_experiment(ensure_experiment(c, "beside", uri))
    assert exp.artifact_location == (db.parent / "mlartifacts").as_uri()


def test_where_artifacts_go(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_RAY_RESULTS", str(tmp_path / "results"))
    assert artifact_root_for(f"sqlite:///{tmp_path / 'a' / 'm.db'}") == (tmp_path / "a" / "mlartifacts").as_uri()
    # a database MLflow opens itself: under the results folder, never ./mlruns in the working directory
    assert artifact_root_for("postgresql://me@/mlflow") == (tmp_path / "results" / "mlartifacts").as_uri()
    assert artifact_root_for("http://127.0.0.1:5000") is None  # the server decides


def test_the_sqlite_store_is_created_by_four_processes_at_once(tmp_path):
    """Two sweeps that create one database at the same moment: each runs MLflow's migrations under a lock
    (alembic used to fail in one of them)."""
    code = (
        "import sys; from ssl_ray.tracking import client, ensure_experiment; "
        "u = sys.argv[1]; c = client(u); print(ensure_experiment(c, sys.argv[2], u))"
    )
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri, f"exp{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    assert len({o[0].strip() for o in outs}) == 4


# -- experiments ----------------------------------------------------------------------------------------------


def test_new_and_older_experiments_carry_the_kind(store, tmp_path):
    """Every sweep's experiment is tagged ``mlflow.experimentKind=custom_model_development`` (MLflow's UI opens it on
    its runs); an experiment made before the tag gets it when a sweep finds it again."""
    uri, c = store
    get_or_create_parent_run(uri, "kind-fresh", str(tmp_path / "s1"), {"a": 1}, create=True)
    assert c.get_experiment_by_name("kind-fresh").tags.get(EXPERIMENT_KIND[0]) == "custom_model_development"
    assert EXPERIMENT_KIND == ("mlflow.experimentKind", "custom_model_development")
    old = c.create_experiment("kind-older")  # as an earlier version made it: no tag
    assert EXPERIMENT_KIND[0] not in c.get_experiment(old).tags
    assert ensure_experiment(c, "kind-older", uri) == old
    assert c.get_experiment(old).tags[EXPERIMENT_KIND[0]] == "custom_model_development"


def test_an_experiment_is_made_once_and_a_deleted_one_comes_back(store):
    uri, c = store
    first = ensure_experiment(c, "once", uri)
    assert ensure_experiment(c, "once", uri) == first
    c.delete_experiment(first)
    assert ensure_experiment(c, "once", uri) == first  # restored, not a second experiment of that name
    assert c.get_experiment(first).lifecycle_stage == "active"


# -- runs found again by their tags ---------------------------------------------------------------------------


def test_a_sweep_has_one_parent_run(store, tmp_path):
    uri, c = store
    sweep_dir = str(tmp_path / "sweeps" / "p")
    run = get_or_create_parent_run(uri, "parents", sweep_dir, {"sweep.name": "p", "unset": None}, create=True)
    got = c.get_run(run)
    assert got.data.tags[TAG_SWEEP_DIR] == sweep_dir and got.data.tags[TAG_KIND] == "sweep"
    assert got.data.tags["mlflow.runName"] == "sweep-p"
    assert got.data.params == {"sweep.name": "p"}  # None is never logged as "None"
    c.set_terminated(run, "FAILED")
    assert get_or_create_parent_run(uri, "parents", sweep_dir, {"sweep.name": "p"}) == run  # a resume: the same run
    assert c.get_run(run).info.status == "RUNNING"
    # a new sweep never joins an older one's run (its directory removed and made again): one line, naming the run
    with pytest.raises(ConfigError) as e:
        get_or_create_parent_run(uri, "parents", sweep_dir, {}, create=True)
    assert f"already has a sweep run ({run}) for {sweep_dir}" in str(e.value) and "--name" in str(e.value)
    assert "\n" not in str(e.value)
    other = get_or_create_parent_run(uri, "parents", str(tmp_path / "sweeps" / "q"), {}, create=True)
    assert other != run
    exp = c.get_experiment_by_name("parents").experiment_id
    assert len(c.search_runs([exp])) == 2


def test_a_sweep_path_with_quotes_finds_its_run_again(store, tmp_path):
    """An apostrophe in the sweep path used to make a new parent run on every lookup."""
    uri, _ = store
    for path in (f"{tmp_path}/it's here", f'{tmp_path}/say "hi"', f"""{tmp_path}/both ' and " """):
        first = get_or_create_parent_run(uri, "quotes", path, {})
        assert get_or_create_parent_run(uri, "quotes", path, {}) == first


def test_tag_filters_quote_what_they_can(store):
    assert tag_filter("t", "plain") == "tags.`t` = 'plain'"
    assert tag_filter("t", "it's") == 'tags.`t` = "it\'s"'
    assert tag_filter("t", 'say "hi"') == "tags.`t` = 'say \"hi\"'"
    assert tag_filter("t", "both ' and \"") is None  # no quoting holds it: search_by_tag compares the runs itself
    uri, c = store
    exp = ensure_experiment(c, "tag-search", uri)
    want = c.create_run(exp, tags={"t": "both ' and \""}).info.run_id
    c.create_run(exp, tags={"t": "both ' and"})
    assert [r.info.run_id for r in search_by_tag(c, exp, "t", "both ' and \"")] == [want]


def test_a_trial_has_one_run_under_its_sweep(store, tmp_path):
    uri, c = store
    parent = get_or_create_parent_run(uri, "trials", str(tmp_path / "s"), {}, create=True)
    assert find_trial_run(uri, parent, "t_0001") is None
    run = get_or_create_trial_run(uri, parent, "t_0001", "lam=10", {"objective.lam": 10.0, "train.init": None})
    got = c.get_run(run)
    assert got.info.experiment_id == c.get_run(parent).info.experiment_id
    assert {k: got.data.tags[k] for k in (TAG_TRIAL_ID, TAG_PARENT, TAG_KIND, "mlflow.runName")} == {
        TAG_TRIAL_ID: "t_0001",
        TAG_PARENT: parent,
        TAG_KIND: "trial",
        "mlflow.runName": "lam=10",
    }
    assert got.data.params == {"objective.lam": "10.0"}
    c.set_terminated(run, "KILLED")
    assert get_or_create_trial_run(uri, parent, "t_0001", "lam=10", {"objective.lam": 10.0}) == run
    assert c.get_run(run).info.status == "RUNNING" and find_trial_run(uri, parent, "t_0001") == run
    second = get_or_create_trial_run(uri, parent, "t_0002", "lam=25", {"objective.lam": 25.0})
    assert [r.info.run_id for r in sorted(child_runs(c, parent), key=lambda r: r.data.tags[TAG_TRIAL_ID])] == [
        run,
        second,
    ]
    assert child_runs(c, parent, kind="bank") == []


def test_a_run_found_again_gets_the_params_its_killed_process_did_not_log(store):
    """A driver SIGKILLed between a run's ``create_run`` and its params (seen in the fault-and-resume sweep: the
    pending trial's run had no params after the resume) leaves a run with none or some of them; the resume that
    finds the run again logs the missing ones and leaves those already there."""
    uri, c = store
    exp = ensure_experiment(c, "killed", uri)
    sweep = c.create_run(exp, tags={TAG_SWEEP_DIR: "/s/k", TAG_KIND: "sweep"}).info.run_id  # killed before its params
    assert get_or_create_parent_run(uri, "killed", "/s/k", {"sweep.name": "k", "sweep.seeds": 1}) == sweep
    assert c.get_run(sweep).data.params == {"sweep.name": "k", "sweep.seeds": "1"}
    trial = c.create_run(exp, tags={TAG_TRIAL_ID: "t1", TAG_PARENT: sweep, TAG_KIND: "trial"}).info.run_id
    c.log_param(trial, "optim.lr", "0.002")  # one batch of its params made it
    params = {"optim.lr": 0.002, "model.width": 8, "train.init_checkpoint": None}
    assert get_or_create_trial_run(uri, sweep, "t1", "t1", params) == trial
    assert c.get_run(trial).data.params == {"optim.lr": "0.002", "model.width": "8"}  # None is never logged
    assert get_or_create_trial_run(uri, sweep, "t1", "t1", params) == trial  # found a third time: nothing to add


def test_a_bank_has_one_run_in_the_banks_experiment(store):
    uri, c = store
    assert find_bank_run(uri, "banks-a", KEY_TAG, "k1") is None
    assert c.get_experiment_by_name("banks-a") is None  # looking created nothing
    run = get_or_create_bank_run(uri, "banks-a", KEY_TAG, "k1")
    got = c.get_run(run)
    assert got.data.tags[KEY_TAG] == "k1" and got.data.tags[TAG_KIND] == "bank"
    assert got.data.tags["mlflow.runName"] == "target bank k1"
    exp = c.get_experiment_by_name("banks-a")
    assert got.info.experiment_id == exp.experiment_id and exp.tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]
    c.set_terminated(run, "FAILED")  # its training failed; the next sweep trains it again, in the same run
    assert get_or_create_bank_run(uri, "banks-a", KEY_TAG, "k1") == run
    assert c.get_run(run).info.status == "RUNNING"
    assert find_bank_run(uri, "banks-a", KEY_TAG, "k1") == run
    assert find_bank_run(uri, "banks-a", KEY_TAG, "k2") is None
    assert get_or_create_bank_run(uri, "banks-a", KEY_TAG, "k2") != run
    assert len(c.search_runs([exp.experiment_id])) == 2


# -- params and metrics ---------------------------------------------------------------------------------------


def test_params_skip_the_unset_and_go_in_batches(store):
    uri, c = store
    run = c.create_run(ensure_experiment(c, "params", uri)).info.run_id
    params = {f"p{i:03d}": i for i in range(250)} | {"unset": None, "long": "x" * 7000, "flag": False, "dims": [4, 8]}
    log_params(c, run, params)
    got = c.get_run(run).data.params
    assert len(got) == 253 and "unset" not in got  # 250 and three (in batches of 100: MLflow takes 100 at once)
    assert got["p007"] == "7" and got["flag"] == "False" and got["dims"] == "[4, 8]"
    assert got["long"] == "x" * 6000  # kept as its first 6000 characters (MLflow's limit), not refused
    log_missing_params(c, run, {"p007": 70, "new": 1.5})
    got = c.get_run(run).data.params
    assert got["p007"] == "7" and got["new"] == "1.5"  # the existing value stays; only the missing one is logged


def test_a_key_and_step_is_logged_once(store):
    uri, c = store
    run = c.create_run(ensure_experiment(c, "metrics", uri)).info.run_id
    w = MetricWriter(uri, run)
    assert w.log({"train/loss": 1.5, "probe/class/ncc_test/block1": 0.5}, step=1) == 2
    assert w.log({"train/loss": 9.0}, step=1) == 0  # the same (key, step): not written again
    assert w.log({"train/loss": 1.25}, step=2) == 1
    again = MetricWriter(uri, run)  # a retried task's fresh writer reads what the run has
    assert again.log({"train/loss": 9.0, "probe/class/ncc_test/block1": 9.0}, step=1) == 0
    assert again.has("train/loss", 2) and not again.has("train/loss", 3)
    assert [(m.step, m.value) for m in c.get_metric_history(run, "train/loss")] == [(1, 1.5), (2, 1.25)]
    assert [(m.step, m.value) for m in c.get_metric_history(run, "probe/class/ncc_test/block1")] == [(1, 0.5)]
    # a summary a backfill changes is restated: MLflow shows the newest
    assert again.log({"summary/class_linear_val": 0.5}, step=0) == 1
    assert again.log({"summary/class_linear_val": 0.75}, step=0, restate=True) == 1
    assert c.get_run(run).data.metrics["summary/class_linear_val"] == 0.75


def test_tags_through_the_writer(store):
    uri, c = store
    run = c.create_run(ensure_experiment(c, "tags", uri)).info.run_id
    MetricWriter(uri, run).set_tags({"ssl_ray.status": TrialStatus.FINISHED, "ssl_ray.world_size": 2})
    assert {k: v for k, v in c.get_run(run).data.tags.items() if k.startswith("ssl_ray.")} == {
        "ssl_ray.status": "finished",
        "ssl_ray.world_size": "2",
    }


def test_trial_status():
    assert str(TrialStatus.STOPPED) == "stopped" and TrialStatus("diverged") is TrialStatus.DIVERGED
    assert {s for s in TrialStatus if s.usable} == {TrialStatus.RUNNING, TrialStatus.FINISHED, TrialStatus.STOPPED}
