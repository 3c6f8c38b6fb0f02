"""Which layer and which configuration a sweep's headline numbers come from: one rule, on validation data.

Every probe fits on the probe's train rows and is scored on held-out *validation* rows (a stratified,
seeded share of the train split, ``probe.val_fraction``) and on the test split. The choice reads only
the validation scores; test numbers are then reported *at* that choice, so they are not the maximum of
many noisy test readings. The sweep summary, ``trials.md``, the report and its figures all call
:func:`select`:

* **a trial's best layer**: the layer with the highest class ``linear_val`` at the trial's last probed
  checkpoint (``ncc_val`` when the sweep ran no linear probes);
* **the report layer**: the layer with the highest such value averaged over the usable trials (not
  diverged, collapsed or errored);
* **the best configuration**: among usable configurations, the highest value at the report layer
  averaged over its seeds; its **best trial** (for the one-trial figures) is its seed with the highest
  value there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from ssl_ray.reports.source import UNUSABLE, SweepData

TARGET = "class"


def selection_metric(data: SweepData) -> str:
    """``linear_val``, or ``ncc_val`` for a sweep without linear probes."""
    return "linear_val" if (data.probes.metric == "linear_val").any() else "ncc_val"


def reported_metric(selection: str) -> str:
    """The test-split twin of a validation metric (``linear_val`` -> ``linear_test``)."""
    return selection.replace("_val", "_test")


@dataclass(frozen=True)
class Selection:
    metric: str  # the validation metric the choice is made on
    layer: str  # the report layer
    best_config: str
    best_trial: str
    trial_layers: Dict[str, str]  # trial id -> its best layer

    @property
    def test_metric(self) -> str:
        return reported_metric(self.metric)


def _val(data: SweepData, trial_id: str, metric: str, layer: str) -> float:
    return data.final(trial_id, TARGET, metric, layer)


def best_layer(data: SweepData, trial_ids: List[str], metric: str) -> str:
    """The layer with the highest mean validation score over ``trial_ids`` at their last checkpoints."""
    means = {layer: np.nanmean([_val(data, t, metric, layer) for t in trial_ids] or [math.nan]) for layer in data.layers}
    scored = {k: v for k, v in means.items() if not math.isnan(v)}
    return max(scored, key=scored.get) if scored else data.layers[-1]


def select(data: SweepData) -> Selection:
    """The rule of the module docstring. Reads only ``*_val`` metrics."""
    metric = selection_metric(data)
    trial_layers = {t.trial_id: best_layer(data, [t.trial_id], metric) for t in data.trials}
    usable = data.usable()
    layer = best_layer(data, [t.trial_id for t in usable], metric)
    score = {t.trial_id: _val(data, t.trial_id, metric, layer) for t in data.trials}
    score = {k: (-math.inf if math.isnan(v) else v) for k, v in score.items()}
    groups = {name: [t for t in ts if t.status not in UNUSABLE] or ts for name, ts in data.configs().items()}
    usable_groups = {k: v for k, v in groups.items() if any(t.status not in UNUSABLE for t in v)} or groups
    config_score = {k: float(np.mean([score[t.trial_id] for t in ts])) for k, ts in usable_groups.items()}
    best_config = max(config_score, key=config_score.get)
    best_trial = max(usable_groups[best_config], key=lambda t: score[t.trial_id]).trial_id
    return Selection(metric, layer, best_config, best_trial, trial_layers)
