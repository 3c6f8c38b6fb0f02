"""The probe table a fan-out logs at the end of a trial is what MLflow holds, and costs the driver no history
request for the values its own writer logged (a trial has about a thousand probe keys; one request each took
25 s of the sweep driver's time per tiny sweep over HTTP)."""

import time

from ssl_ray.metric_log import MetricWriter
from ssl_ray.probes.table import COLUMNS, probe_table
from ssl_ray.tracking import client


def keys(n_layers: int):
    return [f"probe/{t}/{m}/layer{i}" for i in range(n_layers) for t in ("class", "sample") for m in ("ncc_test", "cdnv")]


def test_table_through_the_writer_equals_the_store_and_skips_its_own_keys(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    exp = c.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    run_id = c.create_run(exp).info.run_id
    # an earlier process (killed, say) logged epoch 0 of the first layer's keys, and a value this one must not repeat
    earlier = MetricWriter(uri, run_id)
    assert earlier.log({k: 0.5 for k in keys(1)}, step=0) == 4
    writer = MetricWriter(uri, run_id)
    assert writer.log({k: 0.25 for k in keys(1)}, step=0) == 0  # already there: idempotent
    all_keys = keys(100)  # 400 keys, as a trial of many layers and targets has
    for epoch in (0, 1, 2):
        writer.log({k: epoch + i / 1000 for i, k in enumerate(all_keys)}, step=epoch)
    t0 = time.perf_counter()
    fresh = probe_table(client(uri), run_id)  # every history read from the store
    t_store = time.perf_counter() - t0
    t0 = time.perf_counter()
    mine = probe_table(writer.client, run_id, writer)
    t_writer = time.perf_counter() - t0
    assert list(mine.columns) == COLUMNS and len(mine) == 400 * 3
    assert mine.equals(fresh)  # the same rows, values and order
    # known values: the earlier process's 0.5 at epoch 0 for layer0 kept; the writer's own values elsewhere
    row = mine[(mine.layer == "layer0") & (mine.epoch == 0) & (mine.target == "class") & (mine.metric == "cdnv")]
    assert row.value.tolist() == [0.5]
    row = mine[(mine.layer == "layer7") & (mine.epoch == 2) & (mine.target == "sample") & (mine.metric == "ncc_test")]
    assert row.value.tolist() == [2 + all_keys.index("probe/sample/ncc_test/layer7") / 1000]
    # 4 history requests (the keys the run had before this writer) instead of 400
    assert t_writer * 5 < t_store, (t_writer, t_store)


def test_a_table_older_than_the_run_is_not_read_as_current(tmp_path):
    """The summary, the report and ``results.load`` read a trial's ``probes.csv`` (one request) only while it
    holds every key's latest (step, value); a value logged after it was written sends them to the histories."""
    from ssl_ray.probes.table import log_probe_table, table_is_current

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    run_id = c.create_run(c.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))).info.run_id
    w = MetricWriter(uri, run_id)
    w.log({"probe/class/ncc_test/block1": 1.0, "probe/class/cdnv/block1": 0.3, "train/loss": 2.0}, step=0)
    w.log({"probe/class/ncc_test/block1": 1.0, "probe/class/cdnv/block1": float("nan")}, step=2)
    table = log_probe_table(w)
    assert len(table) == 4 and table_is_current(table, c.get_run(run_id))
    # the same value (1.0) at a later epoch: only the step tells the table is behind
    MetricWriter(uri, run_id).log({"probe/class/ncc_test/block1": 1.0}, step=4)
    assert not table_is_current(table, c.get_run(run_id))
    assert table_is_current(probe_table(c, run_id), c.get_run(run_id))
    # a key the table lacks
    MetricWriter(uri, run_id).log({"probe/sample/ncc_test/block1": 0.9}, step=4)
    assert not table_is_current(probe_table(c, run_id).iloc[:-1], c.get_run(run_id))
    # a changed value at the same step (MLflow keeps the newest)
    before = probe_table(c, run_id)
    assert table_is_current(before, c.get_run(run_id))
    c.log_metric(run_id, "probe/class/cdnv/block1", 0.31, step=2)
    assert not table_is_current(before, c.get_run(run_id))


def test_a_writer_that_knows_a_current_table_plans_and_logs_without_reading_histories(tmp_path):
    """``ssl-ray probe`` and a resumed sweep learn what a run holds from its current probes.csv (one request):
    the table read back into histories gives the same table, and the writer that knows it skips what is there."""
    from ssl_ray.probes.table import log_probe_table, probe_rows, read_probe_table, table_histories

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    run_id = c.create_run(c.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))).info.run_id
    w = MetricWriter(uri, run_id)
    for epoch in (0, 1):
        w.log({k: epoch + i / 100 for i, k in enumerate(keys(3))}, step=epoch)
    table = log_probe_table(w)
    read = read_probe_table(c, run_id)
    hist = table_histories(read)
    assert len(hist) == 12 and all(sorted(m.step for m in h) == [0, 1] for h in hist.values())
    rows = sorted(probe_rows("", run_id, hist))
    assert [r[2:] for r in rows] == sorted(map(tuple, table[["epoch", "layer", "target", "metric", "value"]].values.tolist()))
    later = MetricWriter(uri, run_id)
    later.know(hist)
    assert later.has("probe/class/cdnv/layer2", 1) and not later.has("probe/class/cdnv/layer2", 2)
    # epoch 1 again: nothing logged twice; epoch 2: all new
    assert later.log({k: 9.0 for k in keys(3)}, step=1) == 0 and later.log({k: 9.0 for k in keys(3)}, step=2) == 12
    assert [m.step for m in c.get_metric_history(run_id, "probe/class/cdnv/layer2")] == [0, 1, 2]
