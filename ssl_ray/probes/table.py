"""The tidy table of a trial's probe results: one row per (epoch, layer, target, metric), read back from
MLflow (so it is complete after retries and backfills) and logged as the run's ``probes/probes.csv``."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, List, Mapping, Optional

import pandas as pd

from ssl_ray.metric_log import metric_histories
from ssl_ray.tracking import TAG_TRIAL_ID

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ssl_ray.metric_log import MetricWriter

COLUMNS = ["trial_id", "run_id", "epoch", "layer", "target", "metric", "value"]
ARTIFACT_DIR = "probes"
ARTIFACT_NAME = "probes.csv"


def probe_rows(trial_id: str, run_id: str, histories: Mapping[str, list]) -> List[tuple]:
    """``COLUMNS`` rows of the ``probe/<target>/<metric>/<layer>`` histories among ``histories``."""
    rows: List[tuple] = []
    for key in sorted(histories):
        parts = key.split("/", 3)
        if parts[0] == "probe" and len(parts) == 4:
            _, target, metric, layer = parts
            rows += [(trial_id, run_id, m.step, layer, target, metric, m.value) for m in histories[key]]
    return rows


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


def table_histories(table: pd.DataFrame) -> dict:
    """``{probe key: [Metric, ...]}`` of the table's rows (the inverse of ``probe_rows``; timestamps 0)."""
    from mlflow.entities import Metric

    out: dict = {}
    for t, m, layer, e, v in table[["target", "metric", "layer", "epoch", "value"]].itertuples(index=False):
        key = f"probe/{t}/{m}/{layer}"
        out.setdefault(key, []).append(Metric(key, float(v), 0, int(e)))
    return out


def table_is_current(table: pd.DataFrame, run) -> bool:
    """True when ``table`` has every probe key of ``run`` and, for each, the latest step and value MLflow holds
    (MLflow keeps each key's latest ``(step, value)`` with the run): a table written before a later value was
    logged (a process killed between logging and rewriting it) is not current."""
    latest = {m.key: (m.step, m.value) for m in run.data._metric_objs if m.key.startswith("probe/")}
    # each key's last row at its highest epoch: MLflow's latest is the newest value at the highest step
    have = {k: max(((m.step, i, m.value) for i, m in enumerate(h)))[::2] for k, h in table_histories(table).items()}
    return have.keys() == latest.keys() and all(have[k][0] == step and _same(have[k][1], v) for k, (step, v) in latest.items())


def _same(a: float, b: float) -> bool:
    """Equal up to a CSV round trip (1e-12, relative above 1); two NaNs are the same reading."""
    return a == b or abs(a - b) <= 1e-12 * max(1.0, abs(b)) or (math.isnan(a) and math.isnan(b))


def log_probe_table(writer: MetricWriter) -> pd.DataFrame:
    """Write (or overwrite) the ``probes/probes.csv`` artifact of the writer's run; returns the table."""
    df = probe_table(writer.client, writer.run_id, writer)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARTIFACT_NAME
        df.to_csv(path, index=False)
        writer.client.log_artifact(writer.run_id, str(path), ARTIFACT_DIR)
    return df
