"""MLflow on a real PostgreSQL (conftest's ``postgres_server``: Debian's server in a temporary folder, no mocks).

A ``postgresql://`` URI is a store: ssl_ray opens it with psycopg 3 (its dependency), finds a sweep's run again
instead of making a second, and logs each (key, step) once; a URI whose driver is missing, whose server does
not answer or whose database does not exist is one line naming the cause. The concurrent writers against an
``mlflow server`` on PostgreSQL are ``benchmarks/tracking_load.py --quick`` (tests/e2e/test_benchmarks.py,
which starts its servers on this fixture); a whole sweep against such a server is marked slow."""

import pytest
from conftest import LIGHT_PROBES, mlflow_server, run_sweep_script


def test_a_postgresql_uri_is_a_store(postgres_server, tmp_path, monkeypatch):
    from ssl_ray.errors import ConfigError
    from ssl_ray.metric_log import MetricWriter
    from ssl_ray.tracking import client, get_or_create_parent_run
    from ssl_ray.uris import check_tracking_uri, store_uri

    monkeypatch.setenv("SSL_RAY_RESULTS", str(tmp_path / "results"))
    uri = postgres_server.database("direct").replace("postgresql+psycopg://", "postgresql://")
    assert store_uri(uri).startswith("postgresql+psycopg://")  # psycopg 3, whatever SQLAlchemy's default driver
    check_tracking_uri(uri)
    run = get_or_create_parent_run(uri, "pg", "/sweeps/pg", {"model.width": 8, "unset": None})
    assert get_or_create_parent_run(uri, "pg", "/sweeps/pg", {"model.width": 8}) == run  # found again, not made twice
    with pytest.raises(ConfigError, match="already has a sweep run"):
        get_or_create_parent_run(uri, "pg", "/sweeps/pg", {}, create=True)
    c = client(uri)
    assert c.get_run(run).data.params == {"model.width": "8"}
    # artifacts beside the results, never in MLflow's default ./mlruns under the working directory
    assert c.get_experiment_by_name("pg").artifact_location == (tmp_path / "results" / "mlartifacts").as_uri()
    w = MetricWriter(uri, run)
    assert w.log({"train/loss": 1.5, "probe/class/ncc_test/block1": 0.5}, step=1) == 2
    assert w.log({"train/loss": 9.0}, step=1) == 0 and w.log({"train/loss": 1.25}, step=2) == 1
    again = MetricWriter(uri, run)  # a retried task's fresh writer reads what is there
    assert again.log({"train/loss": 9.0, "probe/class/ncc_test/block1": 9.0}, step=1) == 0
    assert [(m.step, m.value) for m in c.get_metric_history(run, "train/loss")] == [(1, 1.5), (2, 1.25)]


def test_postgresql_uris_that_cannot_work_are_one_line(postgres_server):
    from ssl_ray.errors import ConfigError
    from ssl_ray.uris import check_tracking_uri

    good = postgres_server.uri("postgres")
    cases = [
        (good.replace("/postgres?", "/nope?"), 'database "nope" does not exist'),
        (good.replace(f"port={postgres_server.port}", "port=1"), "PostgreSQL refused or did not answer"),
        ("postgresql://me:hunter2@127.0.0.1:9/mlflow", "'postgresql://me:***@127.0.0.1:9/mlflow': PostgreSQL refused"),
        ("postgresql+nosuchdriver://me@/mlflow", "Can't load plugin: sqlalchemy.dialects:postgresql.nosuchdriver"),
    ]
    for uri, message in cases:
        with pytest.raises(ConfigError) as e:
            check_tracking_uri(uri)
        assert message in str(e.value) and "\n" not in str(e.value) and "hunter2" not in str(e.value), str(e.value)


def test_print_config_masks_the_password_of_a_live_store(postgres_server, tmp_path, capsys, monkeypatch):
    """--print-config checks that the store answers, on a real server (it trusts its socket: the password is only
    carried), and prints the URI with ``***`` for the password. (The sweep file and resume: the unit test
    tests/unit/cli/test_held_out_input.py::test_the_sweep_file_and_resume_mask_the_password.)"""
    from conftest import ROOT

    from ssl_ray.sweep.commands import sweep_main

    secret = "hunter2"
    monkeypatch.setenv("SSL_RAY_RESULTS", str(tmp_path / "results"))
    live = f"postgresql://postgres:{secret}@/postgres?host={postgres_server.data}&port={postgres_server.port}"
    assert (
        sweep_main(
            ["--print-config", "--mlflow-uri", live], config_file=str(ROOT / "configs" / "vicreg_digits.yaml"), prog="x"
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "postgresql://postgres:***@/postgres?host=" in out and secret not in out


@pytest.mark.slow
def test_a_sweep_against_an_mlflow_server_on_postgresql(postgres_server, tmp_path, clean_env):
    """The cluster's topology on one machine: a sweep logging over HTTP to ``mlflow server --backend-store-uri
    postgresql+psycopg://...`` (as cluster.yaml's head runs it). The parent and trial runs, the trial's metrics and
    its probes.csv artifact are all there, read back through the server."""
    import pandas as pd
    from mlflow.artifacts import download_artifacts

    db = postgres_server.database("sweep")
    with mlflow_server(tmp_path / "server", backend=db) as base:
        run = run_sweep_script(
            "sweep_vicreg.py",
            "pgsweep",
            tmp_path,
            "--epochs",
            "1",
            "--set",
            "model.depth=1",
            "--search",
            "model.width=[4]",
            "--search",
            "objective.lam=[25]",
            "--no-report",
            *LIGHT_PROBES,
            env=clean_env,
            uri=base,
        )
        assert run.parent is not None and len(run.trials) == 1
        (trial,) = run.trials
        c = run.client
        assert [m.step for m in c.get_metric_history(trial.info.run_id, "train/loss")] == [1]
        probes = [k for k in trial.data.metrics if k.startswith("probe/class/ncc_test/")]
        assert probes, sorted(trial.data.metrics)
        csv = download_artifacts(
            run_id=trial.info.run_id,
            artifact_path="probes/probes.csv",
            tracking_uri=base,
            dst_path=str(tmp_path / "dl"),
        )
        table = pd.read_csv(csv)
        assert {"class", "permuted_1.0"} <= set(table["target"]) and set(table["epoch"]) >= {0, 1}
        assert len(table) == len(table.drop_duplicates(["epoch", "layer", "target", "metric"]))
    import psycopg

    with psycopg.connect(postgres_server.conninfo("sweep")) as conn:  # the runs are in PostgreSQL itself
        assert conn.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (trial.info.run_id,)).fetchone() == (1,)
    assert not (tmp_path / "server" / "mlflow.db").exists()
