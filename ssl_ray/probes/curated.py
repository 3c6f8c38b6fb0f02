"""Which probe readings a trial's MLflow run carries (``probe.mlflow_metrics``).

A trial's probes produce about a thousand ``probe/<target>/<metric>/<layer>`` values per checkpoint set. All of
them go to the run's ``probes/probes.csv`` artifact (``ssl_ray.probes.table``), which ``results.load``, the
reports, the summary and the backfill read. MLflow's run gets a curated few, so that its column picker, chart
view and compare view show what a reader compares (``curated``, the default; ``all`` logs every value):

* per layer, NCC and linear test accuracy of the three levels (``sample``, ``class``, ``superclass``), of the
  two ends of the graded-random targets (the least and the most random ``random_<r>``) and of the chance
  control (the most permuted ``permuted_<r>``);
* per layer, the class ``cdnv``, the information readings (``mi_exact``, ``mine``) and ``rankme`` (label-free
  values are the same under every clean target: the class target's copy is kept).

``train/*``, ``online/*`` and ``summary/*`` are not probe keys and always go to MLflow.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Set

ACCURACIES = ("ncc_test", "linear_test")
LEVELS = ("sample", "class", "superclass")
CLASS_READINGS = ("cdnv", "mi_exact", "mine", "rankme")


def _ends(targets: Iterable[str], prefix: str, both: bool) -> Set[str]:
    """The least and most (``both``) or only the most randomized of the ``<prefix><r>`` targets."""
    graded = sorted((t for t in targets if t.startswith(prefix)), key=lambda t: _level(t[len(prefix) :]))
    if not graded:
        return set()
    return {graded[0], graded[-1]} if both else {graded[-1]}


def _level(r: str) -> float:
    try:
        return float(r)
    except ValueError:
        return float("inf")


def curated_pairs(targets: Iterable[str]) -> Set[tuple]:
    """The ``(target, metric)`` pairs a curated run carries, given the targets a trial probes."""
    targets = set(targets)
    kept = {t for t in LEVELS if t in targets} | _ends(targets, "random_", True) | _ends(targets, "permuted_", False)
    return {(t, m) for t in kept for m in ACCURACIES} | {("class", m) for m in CLASS_READINGS}


def curated(metrics: Mapping[str, float], mode: str = "curated") -> Dict[str, float]:
    """The probe metrics (``probe/<target>/<metric>/<layer>``) of ``metrics`` that MLflow gets under ``mode``;
    every key that is not a probe key passes."""
    if mode == "all":
        return dict(metrics)
    from ssl_ray.probes.table import split_key

    probe = {k: parts for k in metrics if (parts := split_key(k))}  # (layer, target, metric)
    keep = curated_pairs(target for _, target, _ in probe.values())
    return {k: v for k, v in metrics.items() if k not in probe or probe[k][1:] in keep}
