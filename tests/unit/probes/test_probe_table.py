"""The probe table a fan-out logs at the end of a trial is what MLflow holds, and costs the driver no history
request for the values its own writer logged (a trial has about a thousand probe keys; one request each took
25 s of the sweep driver's time per tiny sweep over HTTP)."""

from ssl_ray.metric_log import MetricWriter
from ssl_ray.probes.table import COLUMNS, probe_table
from ssl_ray.tracking import client


def keys(n_layers: int):
    return [
        f"probe/{t}/{m}/layer{i}" for i in range(n_layers) for t in ("class", "sample") for m in ("ncc_test", "cdnv")
    ]


def counting_histories(c) -> list:
    """Spy on ``c``'s history requests (each still goes to the store): the list of the keys asked for."""
    asked, real = [], c.get_metric_history
    c.get_metric_history = lambda run_id, key: asked.append(key) or real(run_id, key)
    return asked


def test_table_through_the_writer_equals_the_store_and_skips_its_own_keys(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    exp = c.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    run_id = c.create_run(exp).info.run_id
    # an earlier process (killed, say) logged epoch 0 of the first layer's keys, and a value this one must not repeat
    earlier = MetricWriter(uri, run_id)
    assert earlier.log({k: 0.5 for k in keys(1)}, step=0) == 4
    writer = MetricWriter(uri, run_id)
    by_writer = counting_histories(writer.client)
    assert writer.log({k: 0.25 for k in keys(1)}, step=0) == 0  # already there: idempotent
    all_keys = keys(100)  # 400 keys, as a trial of many layers and targets has
    for epoch in (0, 1, 2):
        writer.log({k: epoch + i / 1000 for i, k in enumerate(all_keys)}, step=epoch)
    store = client(uri)
    by_store = counting_histories(store)
    fresh = probe_table(store, run_id)  # every history read from the store
    mine = probe_table(writer.client, run_id, writer)
    assert list(mine.columns) == COLUMNS and len(mine) == 400 * 3
    assert mine.equals(fresh)  # the same rows, values and order
    # known values: the earlier process's 0.5 at epoch 0 for layer0 kept; the writer's own values elsewhere
    row = mine[(mine.layer == "layer0") & (mine.epoch == 0) & (mine.target == "class") & (mine.metric == "cdnv")]
    assert row.value.tolist() == [0.5]
    row = mine[(mine.layer == "layer7") & (mine.epoch == 2) & (mine.target == "sample") & (mine.metric == "ncc_test")]
    assert row.value.tolist() == [2 + all_keys.index("probe/sample/ncc_test/layer7") / 1000]
    # 4 history requests (the keys the run had before this writer), all while logging, instead of 400
    assert sorted(by_writer) == sorted(keys(1)) and sorted(by_store) == sorted(all_keys)


def test_the_table_is_every_value_and_catches_up_with_mlflow(tmp_path):
    """The table holds every probe value (MLflow a curated few); the fan-out rewrites it from what the run had plus
    the new rows, the first value of a (epoch, layer, target, metric) staying, as in MLflow; a value MLflow holds at
    a step the table lacks (a process killed between logging and rewriting the table) comes back into it."""
    from ssl_ray.probes.table import (
        current_table,
        merge_rows,
        read_probe_table,
        score_rows,
        table_keys,
        write_probe_table,
    )

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = client(uri)
    run_id = c.create_run(c.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))).info.run_id
    w = MetricWriter(uri, run_id)
    scores = {k: 0.5 for k in keys(2)} | {"probe/class/linear_val/layer0": 0.7}
    assert current_table(w).empty
    table = merge_rows(None, score_rows("t0", run_id, 0, scores))
    write_probe_table(w, table)
    back = read_probe_table(c, run_id)
    assert len(back) == 9 and list(back.columns) == COLUMNS and back.equals(current_table(MetricWriter(uri, run_id)))
    # the same key again at epoch 0 keeps its first value; epoch 1 is new
    again = merge_rows(
        back,
        score_rows("t0", run_id, 0, {"probe/class/cdnv/layer0": 9.0})
        + score_rows("t0", run_id, 1, {"probe/class/cdnv/layer0": 0.25}),
    )
    got = again.query("metric == 'cdnv' and layer == 'layer0' and target == 'class'").set_index("epoch").value
    assert got.to_dict() == {0: 0.5, 1: 0.25}
    # MLflow holds epoch 2 of a curated key that the table never got: current_table brings it in, and nothing else
    MetricWriter(uri, run_id).log({"probe/class/ncc_test/layer1": 0.875, "train/loss": 3.0}, step=2)
    now = current_table(MetricWriter(uri, run_id))
    assert table_keys(now) - table_keys(back) == {("probe/class/ncc_test/layer1", 2)}
    assert now.query("epoch == 2").value.tolist() == [0.875]
