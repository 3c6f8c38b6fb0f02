"""The tidy table of a trial's probe results: one row per (epoch, layer, target, metric), the run's
``probes/probes.csv`` artifact. It holds *every* probe value, while the run's MLflow metrics hold a curated few
(``ssl_ray.probes.curated``): the table is what ``results.load``, the reports, the summary and the backfill read.

The fan-out rewrites it after each checkpoint: the table as the run had it (artifact, and any probe key MLflow
holds that it lacks: a process killed between logging and rewriting), plus the new rows. The first value of a
(epoch, layer, target, metric) stays, as in MLflow (``MetricWriter``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, List, Mapping, Optional

import pandas as pd

from ssl_ray.metric_log import metric_histories
from ssl_ray.tracking import TAG_TRIAL_ID

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ssl_ray.metric_log import MetricWriter

COLUMNS = ["trial_id", "run_id", "epoch", "layer", "target", "metric", "value"]
ARTIFACT_DIR = "probes"
ARTIFACT_NAME = "probes.csv"


def split_key(key: str) -> Optional[tuple]:
    """``probe/<target>/<metric>/<layer>`` -> ``(layer, target, metric)``; None for any other key."""
    parts = key.split("/", 3)
    return (parts[3], parts[1], parts[2]) if parts[0] == "probe" and len(parts) == 4 else None


def probe_rows(trial_id: str, run_id: str, histories: Mapping[str, list]) -> List[tuple]:
    """``COLUMNS`` rows of the ``probe/<target>/<metric>/<layer>`` histories among ``histories``."""
    return [
        (trial_id, run_id, m.step, *split_key(key), m.value)
        for key in sorted(histories)
        if split_key(key)
        for m in histories[key]
    ]


def probe_table(client: MlflowClient, run_id: str, writer: Optional[MetricWriter] = None) -> pd.DataFrame:
    """The run's probe values as MLflow holds them: one history request per key (8 at a time), or, through
    the ``writer`` that logged them, none for the keys it wrote or read before."""
    run = client.get_run(run_id)
    keys = [k for k in run.data.metrics if k.startswith("probe/")]
    hist = writer.histories(keys) if writer is not None else metric_histories(client, run_id, keys, threads=8)
    df = pd.DataFrame(probe_rows(run.data.tags.get(TAG_TRIAL_ID, ""), run_id, hist), columns=COLUMNS)
    return df.sort_values(["epoch", "layer", "target", "metric"], kind="stable").reset_index(drop=True)


def read_probe_table(client: MlflowClient, run_id: str) -> Optional[pd.DataFrame]:
    """The run's ``probes/probes.csv`` artifact (one request), or None when it has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{ARTIFACT_NAME}", tmp)
        except Exception:  # noqa: BLE001 - MLflow raises its own types for a missing artifact
            return None
        return pd.read_csv(path)


def score_rows(trial_id: str, run_id: str, epoch: int, metrics: Mapping[str, float]) -> List[tuple]:
    """``COLUMNS`` rows of one checkpoint's ``{probe/<target>/<metric>/<layer>: value}``."""
    return [(trial_id, run_id, int(epoch), *split_key(k), float(v)) for k, v in sorted(metrics.items()) if split_key(k)]


KEY = ["epoch", "layer", "target", "metric"]


def merge_rows(table: Optional[pd.DataFrame], rows: Iterable[tuple]) -> pd.DataFrame:
    """``table`` with ``rows`` added where it has no value for their (epoch, layer, target, metric), sorted."""
    parts = [df for df in (table, pd.DataFrame(list(rows), columns=COLUMNS)) if df is not None and len(df)]
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    df = df.drop_duplicates(KEY, keep="first")
    return df.sort_values(KEY, kind="stable").reset_index(drop=True)


def table_keys(table: Optional[pd.DataFrame]) -> set:
    """``{(probe/<target>/<metric>/<layer>, epoch)}`` of the table's rows."""
    if table is None or not len(table):
        return set()
    return {
        (f"probe/{t}/{m}/{layer}", int(e))
        for t, m, layer, e in table[["target", "metric", "layer", "epoch"]].itertuples(index=False)
    }


def current_table(writer: MetricWriter) -> pd.DataFrame:
    """Every probe value the writer's run holds: its ``probes.csv``, and the history of any probe key whose latest
    step in MLflow the table lacks (read through the writer: no request for a history it knows)."""
    table = read_probe_table(writer.client, writer.run_id)
    run = writer.client.get_run(writer.run_id)
    latest = {(m.key, int(m.step)) for m in run.data._metric_objs if m.key.startswith("probe/")}
    latest -= table_keys(table)
    keys = sorted({k for k, _ in latest})
    rows = probe_rows(run.data.tags.get(TAG_TRIAL_ID, ""), writer.run_id, writer.histories(keys)) if keys else []
    return merge_rows(table, rows)


def write_probe_table(writer: MetricWriter, table: pd.DataFrame) -> None:
    """Write (or overwrite) the ``probes/probes.csv`` artifact of the writer's run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARTIFACT_NAME
        table[COLUMNS].to_csv(path, index=False)
        writer.client.log_artifact(writer.run_id, str(path), ARTIFACT_DIR)
