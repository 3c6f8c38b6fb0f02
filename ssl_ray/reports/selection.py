"""Which layer and which configuration a sweep's headline numbers come from: one rule, on validation data.

Every probe fits on the probe's train rows and is scored on held-out *validation* rows (a stratified,
seeded share of the train split, ``probe.val_fraction``) and on the test split. The choice reads only
the validation scores; test numbers are then reported *at* that choice, so they are not the maximum of
many noisy test readings. The sweep summary, ``trials.md``, the report and its figures all call
:func:`select`; the layer rule itself is :func:`ssl_ray.probes.choice.best_layer`, which a trial's
``summary/*`` numbers use too:

* **a trial's best layer**: the layer with the highest class ``linear_val`` at the trial's last probed
  checkpoint (``ncc_val`` when the sweep ran no linear probes);
* **a configuration's best layer**: the same, averaged over its usable seeds (not diverged, collapsed
  or errored), and its score is that average there (the last layer where no layer has a score);
* **the best configuration**: the highest score; **the report layer** (of the one-layer figures) is
  its best layer, and its **best trial** (for the one-trial figures) is its seed with the highest
  value there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from ssl_ray.probes.choice import SELECTION_TARGET, best_layer, reported_metric, selection_metric
from ssl_ray.reports.source import UNUSABLE, SweepData


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
    return data.final(trial_id, SELECTION_TARGET, metric, layer)


def layer_of(data: SweepData, trial_ids: List[str], metric: str) -> str:
    """The best layer of ``trial_ids`` together (:func:`ssl_ray.probes.choice.best_layer`); the last layer
    where none has a score."""
    scores = {layer: [_val(data, t, metric, layer) for t in trial_ids] for layer in data.layers}
    return best_layer(scores) or data.layers[-1]


def trial_layers(data: SweepData, metric: str) -> Dict[str, str]:
    """Each trial's best layer: ``{trial id: layer}``."""
    return {t.trial_id: layer_of(data, [t.trial_id], metric) for t in data.trials}


def config_layers(data: SweepData, metric: str) -> Dict[str, tuple[str, float]]:
    """Per configuration: ``(best layer, mean validation score there)`` over its usable seeds."""
    out = {}
    for name, trials in data.configs().items():
        ids = [t.trial_id for t in trials if t.status not in UNUSABLE] or [t.trial_id for t in trials]
        layer = layer_of(data, ids, metric)
        vals = [_val(data, i, metric, layer) for i in ids]
        vals = [v for v in vals if not math.isnan(v)]
        out[name] = (layer, float(np.mean(vals)) if vals else -math.inf)
    return out


def select(data: SweepData) -> Selection:
    """The rule of the module docstring. Reads only ``*_val`` metrics."""
    metric = selection_metric(data.probes.metric)
    groups = data.configs()
    usable = [c for c, ts in groups.items() if any(t.status not in UNUSABLE for t in ts)] or list(groups)
    per_config = config_layers(data, metric)
    best_config = max(usable, key=lambda c: per_config[c][1])
    layer = per_config[best_config][0]
    seeds = [t for t in groups[best_config] if t.status not in UNUSABLE] or groups[best_config]
    best_trial = max(
        seeds, key=lambda t: -math.inf if math.isnan(v := _val(data, t.trial_id, metric, layer)) else v
    ).trial_id
    return Selection(metric, layer, best_config, best_trial, trial_layers(data, metric))
