"""The one rule that chooses a layer on validation data, never on test data.

A layer's score is its class ``linear_val`` (``ncc_val`` where no linear probe ran) at a trial's last
probed checkpoint; over several trials (the seeds of one configuration), the mean of their scores.
The best layer has the highest score; a tie goes to the layer nearest the input, and the ``input``
pixels (the pixel baseline) are never a candidate. Test numbers are then read *at* that layer, so they
are not the maximum of many noisy test readings.

Both sides of the package call it: a trial's ``summary/*`` numbers (``ssl_ray.probes.summary``, in the
probe fan-out) and a sweep's choices (``ssl_ray.reports.selection``: the sweep summary, ``trials.md``,
the report, ``results.load``'s ``best_layer``). Numpy only: ``results.load`` never imports torch.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional, Tuple

import numpy as np

from ssl_ray.probes.plan import INPUT_LAYER

SELECTION_TARGET = "class"  # the target whose validation score chooses


def selection_metric(metrics: Iterable[str]) -> str:
    """``linear_val`` where any linear probe ran (``metrics``: the metric names probed), else ``ncc_val``."""
    return "linear_val" if "linear_val" in set(metrics) else "ncc_val"


def reported_metric(selection: str) -> str:
    """The test-split twin of a validation metric (``linear_val`` -> ``linear_test``)."""
    return selection.replace("_val", "_test")


def layer_order(name: str) -> Tuple[int, int, str]:
    """Input to output: the input pixels, backbone stages (``block<i>``, ``layer<i>``), projector hidden layers,
    projector."""
    m = re.search(r"(\d+)$", name)
    idx = int(m.group(1)) if m else 0
    group = -1 if name == INPUT_LAYER else 2 if name == "projector" else 1 if name.startswith("proj") else 0
    return group, idx, name


def best_layer(scores: Mapping[str, Iterable[float]]) -> Optional[str]:
    """The layer with the highest mean score, from ``{layer: [one validation score per trial, each at its last
    probed checkpoint]}``; a NaN (a missing reading) is left out of a mean. None when no layer has a score."""
    means = {}
    for layer, values in scores.items():
        v = np.asarray(list(values), dtype=float)
        if layer != INPUT_LAYER and len(v) and not np.isnan(v).all():
            means[layer] = float(np.nanmean(v))
    return max(sorted(means, key=layer_order), key=means.get) if means else None
