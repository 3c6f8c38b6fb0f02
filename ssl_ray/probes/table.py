"""The tidy table of a trial's probe results: one row per (epoch, layer, target, metric), read back from
MLflow (so it is complete after retries and backfills) and logged as the run's ``probes/probes.csv``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, List, Mapping, Optional

import pandas as pd

from ssl_ray.tracking import TAG_TRIAL_ID, metric_histories

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

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


def probe_table(client: MlflowClient, run_id: str) -> pd.DataFrame:
    run = client.get_run(run_id)
    keys = [k for k in run.data.metrics if k.startswith("probe/")]
    df = pd.DataFrame(probe_rows(run.data.tags.get(TAG_TRIAL_ID, ""), run_id, metric_histories(client, run_id, keys)),
                      columns=COLUMNS)
    return df.sort_values(["epoch", "layer", "target", "metric"], kind="stable").reset_index(drop=True)


def read_probe_table(client: MlflowClient, run_id: str) -> Optional[pd.DataFrame]:
    """The run's ``probes/probes.csv`` artifact (one request), or None when it has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{ARTIFACT_NAME}", tmp)
        except Exception:  # noqa: BLE001 - MLflow raises its own types for a missing artifact
            return None
        return pd.read_csv(path)


def log_probe_table(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """Write (or overwrite) the run's ``probes/probes.csv`` artifact; returns the table."""
    df = probe_table(client, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ARTIFACT_NAME
        df.to_csv(path, index=False)
        client.log_artifact(run_id, str(path), ARTIFACT_DIR)
    return df
