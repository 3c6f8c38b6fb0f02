"""A sweep's results as pandas DataFrames, for a notebook or a script.

    from ssl_ray import results
    r = results.load("results/sweeps/vicreg_digits")      # or an experiment name, with tracking_uri=...
    r.trials                                              # one row per trial: hyperparameters, status, summary, run id
    r.probes                                              # trial, epoch, layer, target, metric, value
    r.probes.query("target == 'class' and metric == 'linear_test'").pivot_table(
        index="epoch", columns="layer", values="value")
    r.checkpoint(r.trials.trial[0], epoch=20)             # that checkpoint's directory

Probes are read from each trial's ``probes/probes.csv`` artifact (one request per trial) where it has one. The
layer ``input`` (first checkpoint only) is the pixel baseline: the same probes on the pooled input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandas as pd

from ssl_ray.errors import ConfigError
from ssl_ray.reports.source import SweepData, load_sweep
from ssl_ray.tracking import SUMMARY


@dataclass
class Results:
    trials: pd.DataFrame  # trial, run_id, status, configuration, <param>..., summary/<name>..., trial_dir
    probes: pd.DataFrame  # trial, epoch, layer, target, metric, value
    train: pd.DataFrame  # trial, epoch, metric, value (metric without "train/")
    data: SweepData  # the same sweep as the reports read it

    def checkpoint(self, trial: str, epoch: int) -> str:
        """The directory of ``trial``'s checkpoint at ``epoch`` (a ConfigError naming the epochs it has)."""
        from ssl_ray.checkpoints import scan_checkpoints

        t = self.data.trial(trial)
        found = dict(scan_checkpoints(t.trial_dir)) if t.trial_dir else {}
        if epoch not in found:
            raise ConfigError(f"trial {trial}: no checkpoint of epoch {epoch} (epochs: {', '.join(map(str, sorted(found)))})")
        return found[epoch]


def _value(v: str):
    """Params come back from MLflow as strings; numbers become numbers again."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def load(sweep_dir_or_experiment: str, tracking_uri: Optional[str] = None) -> Results:
    """The sweep in a sweep directory (its own tracking URI) or the MLflow experiment of that name."""
    from ssl_ray.tracking import client

    data = load_sweep(str(sweep_dir_or_experiment), tracking_uri)
    c = client(data.uri)
    rows = []
    for t in data.trials:
        metrics = c.get_run(t.run_id).data.metrics
        rows.append({"trial": t.trial_id, "run_id": t.run_id, "status": t.status, "configuration": t.config,
                     **{k: _value(v) for k, v in sorted(t.params.items())},
                     **{k: v for k, v in sorted(metrics.items()) if k.startswith(SUMMARY)}, "trial_dir": t.trial_dir})
    probes = data.probes.rename(columns={"trial_id": "trial"}).drop(columns=["run_id"])
    probes = probes.sort_values(["trial", "epoch", "layer", "target", "metric"], kind="stable").reset_index(drop=True)
    train = data.train.rename(columns={"trial_id": "trial"}).reset_index(drop=True)
    return Results(pd.DataFrame(rows), probes, train, data)
