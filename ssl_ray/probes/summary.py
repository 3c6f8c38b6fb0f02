"""A trial's headline numbers, chosen on validation data: the ``summary/<name>`` metrics on its MLflow run,
so that the run table sorts and compares trials without opening one.

The layer is chosen by the one rule (:func:`ssl_ray.probes.choice.best_layer`, as the sweep report chooses
it): the highest class ``linear_val`` (``ncc_val`` without linear probes) at the trial's last probed
checkpoint; every number is read there, on the test split. The chance control (``permuted_1.0``) and the
most random bank target (``random_<r>`` with the largest r) sit beside the class accuracy, so a number that
is not above chance shows it at once.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import pandas as pd

from ssl_ray.probes.choice import SELECTION_TARGET, best_layer, reported_metric, selection_metric
from ssl_ray.probes.target_names import CHANCE_CONTROL, most_random


def trial_summary(probes: pd.DataFrame, final_loss: Optional[float] = None) -> Tuple[Dict[str, float], Optional[str]]:
    """``({name: value}, best layer)`` from a trial's tidy probe table (columns epoch, layer, target, metric,
    value). Names: ``class_<m>_val``, ``class_<m>_test``, ``class_ncc_test``, ``<random>_<m>_test``,
    ``<chance control>_<m>_test`` (m = linear, else ncc), ``final_loss``; a missing reading is left out."""
    out: Dict[str, float] = {}
    if final_loss is not None and math.isfinite(final_loss):
        out["final_loss"] = float(final_loss)
    if probes is None or not len(probes):
        return out, None
    last = probes[probes.epoch == probes.epoch.max()]
    val_metric = selection_metric(probes.metric)
    family = val_metric.split("_")[0]
    val = last[(last.target == SELECTION_TARGET) & (last.metric == val_metric)]
    layer = best_layer({name: rows.value for name, rows in val.groupby("layer")})
    if layer is None:
        return out, None
    at = last[last.layer == layer].set_index(["target", "metric"]).value
    random = most_random(set(at.index.get_level_values(0)))
    wanted = [
        (SELECTION_TARGET, val_metric),
        (SELECTION_TARGET, reported_metric(val_metric)),
        ("class", "ncc_test"),
        (CHANCE_CONTROL, f"{family}_test"),
    ]
    if random:
        wanted.append((random, f"{family}_test"))
    for target, metric in wanted:
        if (target, metric) in at.index and math.isfinite(float(at[(target, metric)])):
            out[f"{target}_{metric}"] = float(at[(target, metric)])
    return out, layer


DIGITS = 4  # summary/* values are rounded: MLflow's run table shows what is logged, and nine digits hide the order


def log_trial_summary(writer, table: Optional[pd.DataFrame]) -> Dict[str, float]:
    """Log the trial's ``summary/<name>`` metrics (rounded to ``DIGITS``), at its last probed epoch, and tag the
    layer they are read at; a backfill that changes them restates them (MLflow shows the newest)."""
    from ssl_ray.tracking import SUMMARY, TAG_SUMMARY_LAYER, TRAIN

    loss = writer.client.get_run(writer.run_id).data.metrics.get(TRAIN + "loss")
    summary, layer = trial_summary(table, loss)
    summary = {SUMMARY + k: round(v, DIGITS) for k, v in summary.items()}
    if summary:
        last = int(table.epoch.max()) if table is not None and len(table) else 0
        writer.log(summary, step=last, restate=True)
    if layer:
        writer.set_tags({TAG_SUMMARY_LAYER: layer})
    return summary
