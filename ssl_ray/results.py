"""A sweep's results as pandas DataFrames, for a notebook or a script.

    from ssl_ray import results
    r = results.load("results/sweeps/vicreg_digits")      # or an experiment name, with tracking_uri=...
    r.trials                                              # one row per trial: hyperparameters, status, summary, run id
    r.probes                                              # trial, epoch, layer, target, metric, value
    r.probes.query("target == 'class' and metric == 'linear_test'").pivot_table(
        index="epoch", columns="layer", values="value")
    r.checkpoint(r.trials.trial[0], epoch=20)             # that checkpoint's directory
    r.varying                                             # the hyperparameters that differ between trials
    r.targets                                             # each target's randomness (random_<r>: the bank's own)

Probes are read from each trial's ``probes/probes.csv`` artifact (one request per trial: every probe value) where it
has one. The layer ``input`` (first checkpoint only) is the pixel baseline: the same probes on the pooled input
pixels. ``trials.best_layer`` is each trial's layer chosen on validation data (``ssl_ray.probes.choice``).
Params keep their types (bool, int, float, list). Nothing here imports torch: a notebook gets its frames in the
time MLflow's client takes to start and read the runs.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pandas as pd

from ssl_ray.errors import ConfigError
from ssl_ray.reports.source import SweepData, load_sweep
from ssl_ray.tracking import SUMMARY


@dataclass
class Results:
    trials: pd.DataFrame  # trial, run_id, status, configuration, best_layer, <param>..., summary/<name>..., trial_dir
    probes: pd.DataFrame  # trial, epoch, layer, target, metric, value, randomness
    train: pd.DataFrame  # trial, epoch, metric, value (metric without "train/")
    targets: pd.DataFrame  # target, kind, level, randomness, bank_epoch, bank_accuracy
    data: SweepData  # the same sweep as the reports read it

    @property
    def varying(self) -> List[str]:
        """The params whose values differ between trials (the seed aside)."""
        return list(self.data.varied)

    def checkpoint(self, trial: str, epoch: int) -> str:
        """The directory of ``trial``'s checkpoint at ``epoch`` (a ConfigError naming the epochs it has)."""
        from ssl_ray.checkpoints import scan_checkpoints

        t = self.data.trial(trial)
        found = dict(scan_checkpoints(t.trial_dir)) if t.trial_dir else {}
        if epoch not in found:
            raise ConfigError(
                f"trial {trial}: no checkpoint of epoch {epoch} (epochs: {', '.join(map(str, sorted(found)))})"
            )
        return found[epoch]


def typed(v: str):
    """A param as MLflow returns it (a string) back to what was logged: bool, int, float, list, else the string."""
    try:
        out = ast.literal_eval(v)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return v
    return out if isinstance(out, (bool, int, float, list, tuple)) else v


def target_table(data: SweepData) -> pd.DataFrame:
    """One row per probed target: its kind, nominal level r and actual randomness. A ``random_<r>`` target's is that
    of the bank epoch whose randomness is nearest r (``ssl_ray.probes.target_bank``); ``permuted_<r>`` permutes a
    fraction r of the labels; the others have none."""
    from ssl_ray.probes.target_bank import TargetBank
    from ssl_ray.tracking import TAG_BANK_PATH

    path = data.parent_tags.get(TAG_BANK_PATH) or next(
        (t.params.get("probe.target_bank") for t in data.trials if t.params.get("probe.target_bank")), None
    )
    bank = None
    if path and Path(path).is_file() and any(t.startswith("random_") for t in data.targets):
        try:
            bank = TargetBank.load(path)
        except ConfigError:
            bank = None
    rows = []
    for name in data.targets:
        kind, _, level = name.partition("_")
        r = float(level) if level else math.nan
        row = {
            "target": name,
            "kind": kind,
            "level": r,
            "randomness": r if kind == "permuted" else (0.0 if kind in ("class", "sample", "superclass") else math.nan),
            "bank_epoch": None,
            "bank_accuracy": math.nan,
        }
        if kind == "random" and bank is not None:
            i = bank.nearest(r)
            row.update(
                randomness=float(bank.randomness[i]),
                bank_epoch=int(bank.epochs[i]),
                bank_accuracy=float(bank.accuracy[i]),
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=["target", "kind", "level", "randomness", "bank_epoch", "bank_accuracy"])


def load(sweep_dir_or_experiment: str, tracking_uri: Optional[str] = None) -> Results:
    """The sweep in a sweep directory (its own tracking URI) or the MLflow experiment of that name."""
    from ssl_ray.probes.choice import selection_metric
    from ssl_ray.reports.selection import trial_layers

    data = load_sweep(str(sweep_dir_or_experiment), tracking_uri)
    layers = trial_layers(data, selection_metric(data.probes.metric))
    rows = []
    for t in data.trials:
        rows.append(
            {
                "trial": t.trial_id,
                "run_id": t.run_id,
                "status": t.status,
                "configuration": t.config,
                "best_layer": layers.get(t.trial_id),
                **{k: typed(v) for k, v in sorted(t.params.items())},
                **{k: v for k, v in sorted(t.metrics.items()) if k.startswith(SUMMARY)},
                "trial_dir": t.trial_dir,
            }
        )
    targets = target_table(data)
    probes = data.probes.rename(columns={"trial_id": "trial"}).drop(columns=["run_id"])
    probes = probes.sort_values(["trial", "epoch", "layer", "target", "metric"], kind="stable").reset_index(drop=True)
    probes["randomness"] = probes.target.map(dict(zip(targets.target, targets.randomness)))
    train = data.train.rename(columns={"trial_id": "trial"}).reset_index(drop=True)
    return Results(pd.DataFrame(rows), probes, train, targets, data)
