"""The probe families, and how one layer's features are scored against every target.

``PROBES`` is the registry of probe families (``probe.metrics`` names them). Each takes a
:class:`FeatureSet` -- one layer's features of the probe's train, validation and test rows, the pooled
inputs, and the label targets defined on those rows -- and returns ``{(target, metric): value}``:

=========  ===================================================================================
ncc        ``ncc_train``, ``ncc_val``, ``ncc_test``: nearest-class-center accuracy (class means
           from the train rows)
linear     ``linear_train``, ``linear_val``, ``linear_test``: multinomial logistic regression
           fitted on the train rows, every target of the feature set in one L-BFGS problem
cdnv       ``cdnv``; ``within_var`` (mean Var_c) and ``between_dist2`` (mean ||mu_i - mu_j||^2)
geometry   label-free ``participation_ratio``, ``rankme``, ``alpha``; per target the class
           manifolds' ``manifold_radius`` and ``manifold_dim`` (MMCR's elliptical geometry; for
           ``sample`` the augmentation manifolds)
information ``mi_exact``: I(input; features + noise) on the clean images, exact (``information.py``:
           the noise is ``probe.mine_noise`` times the features' RMS distance from their mean; X uniform
           over the images); ``mi_gaussian``: the same for Gaussian features of that covariance, its
           upper bound (the gap is what clustering takes away)
mine       ``mine``, ``mine_std``, ``mine_saturated``, ``mine_unreliable``: MINE's estimate of that
           same quantity from (input, features + noise) pairs, mean and spread over seeds; 1 where it
           reached its ceiling, and 1 where it is not to be read: MINE's own check failed
           (``mine.mine``) or it misses ``mi_exact`` by more than 25% + 0.05 nats
=========  ===================================================================================

With both ``ncc`` and ``linear``, ``ncc_linear_ratio = ncc_test / linear_test`` is added. Label-free
values describe the feature set, so they are logged under each target that lives on it (every
clean target shares the clean set's values; ``sample`` has its own). The validation rows exist so that
layers and trials are *chosen* without looking at test data (``ssl_ray.reports.selection``).

A target that cannot be scored (``targets.unscorable``: a single class, no class with two samples)
is skipped with its reason; every other target of the layer is still scored. Formulas: ``metrics.py``,
``linear.py``, ``geometry.py``, ``mine.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from ssl_ray.config import ProbeConfig
from ssl_ray.probes.geometry import manifold_geometry, participation_ratio, powerlaw_alpha, rankme
from ssl_ray.probes.information import DRAWS_SALT, NOISE_SALT, add_channel_noise, gaussian_channel_mi, noisy_channel_mi
from ssl_ray.probes.linear import softmax_probe_scores
from ssl_ray.probes.metrics import cdnv_from_spread, class_spread, ncc_accuracy
from ssl_ray.probes.mine import disagrees, mine
from ssl_ray.probes.plan import families_at
from ssl_ray.probes.targets import LabelTarget, unscorable
from ssl_ray.registry import Registry

PROBES = Registry("probe")
Scores = Dict[Tuple[str, str], float]


@dataclass
class FeatureSet:
    name: str  # "clean" or "sample"
    train: torch.Tensor  # (N, C) float32: the rows probes are fitted on
    val: torch.Tensor  # (V, C): held out from the train split, for choosing layers and trials
    test: torch.Tensor  # (M, C)
    inputs: torch.Tensor  # (N + V + M, P): the pooled inputs of train, val, then test rows, for MINE
    targets: List[LabelTarget]
    shared: Dict[str, Any] = field(default_factory=dict)  # what one family computes and another reuses, per layer


def _probe(name: str, *metrics: str):
    """Register a probe family under ``name``; ``metrics`` are the metric names it reports per target."""

    def deco(fn):
        fn.metrics = metrics
        return PROBES.register(name)(fn)

    return deco


def _per_target(fs: FeatureSet, values: Dict[str, float]) -> Scores:
    return {(t.name, k): v for t in fs.targets for k, v in values.items()}


@_probe("ncc", "ncc_train", "ncc_val", "ncc_test")
def ncc_probe(fs: FeatureSet, p: ProbeConfig) -> Scores:
    out: Scores = {}
    for t in fs.targets:
        out[(t.name, "ncc_train")] = ncc_accuracy(fs.train, t.train, fs.train, t.train)
        out[(t.name, "ncc_val")] = ncc_accuracy(fs.train, t.train, fs.val, t.val) if len(t.val) else float("nan")
        out[(t.name, "ncc_test")] = ncc_accuracy(fs.train, t.train, fs.test, t.test)
    return out


@_probe("linear", "linear_train", "linear_val", "linear_test")
def linear_probe(fs: FeatureSet, p: ProbeConfig) -> Scores:
    evals = {"val": (fs.val, [t.val for t in fs.targets]), "test": (fs.test, [t.test for t in fs.targets])}
    scores = softmax_probe_scores(
        fs.train,
        [t.train for t in fs.targets],
        [t.num_classes for t in fs.targets],
        evals,
        C=p.linear_c,
        max_iter=p.linear_max_iter,
    )
    return {(t.name, f"linear_{k}"): v for t, s in zip(fs.targets, scores) for k, v in s.items()}


@_probe("cdnv", "cdnv", "within_var", "between_dist2")
def cdnv_probe(fs: FeatureSet, p: ProbeConfig) -> Scores:
    out: Scores = {}
    for t in fs.targets:
        var, dist2 = class_spread(fs.train, t.train)
        out[(t.name, "cdnv")] = cdnv_from_spread(var, dist2)
        out[(t.name, "within_var")] = float(var.mean())
        out[(t.name, "between_dist2")] = float(dist2.mean())
    return out


@_probe("geometry", "participation_ratio", "rankme", "alpha", "manifold_radius", "manifold_dim")
def geometry_probe(fs: FeatureSet, p: ProbeConfig) -> Scores:
    x = fs.train
    out = _per_target(
        fs, {"participation_ratio": participation_ratio(x), "rankme": rankme(x), "alpha": powerlaw_alpha(x)}
    )
    for t in fs.targets:
        out[(t.name, "manifold_radius")], out[(t.name, "manifold_dim")] = manifold_geometry(x, t.train)
    return out


MINE_FEATURE_SETS = ("clean",)  # I(input; embedding) over the dataset's images, as the study measures it


def _layer_information(fs: FeatureSet, p: ProbeConfig):
    """The clean rows' features through the channel, the exact ``I(X; Z + sigma eps)`` and its Gaussian bound;
    computed once per feature set (the ``information`` and ``mine`` families both read them)."""
    if "information" not in fs.shared:
        z = torch.cat([fs.train, fs.val, fs.test])
        noisy, sigma = add_channel_noise(z, p.mine_noise, p.seed + NOISE_SALT)
        exact, _ = noisy_channel_mi(z, sigma, seed=p.seed + DRAWS_SALT)
        fs.shared["information"] = (noisy, exact, gaussian_channel_mi(z, sigma))
    return fs.shared["information"]


@_probe("information", "mi_exact", "mi_gaussian")
def information_probe(fs: FeatureSet, p: ProbeConfig) -> Scores:
    if fs.name not in MINE_FEATURE_SETS:
        return {}
    _, exact, bound = _layer_information(fs, p)
    return _per_target(fs, {"mi_exact": exact, "mi_gaussian": bound})


@_probe("mine", "mine", "mine_std", "mine_saturated", "mine_unreliable")
def mine_probe(fs: FeatureSet, p: ProbeConfig) -> Scores:
    if fs.name not in MINE_FEATURE_SETS:
        return {}
    noisy, exact, _ = _layer_information(fs, p)
    r = mine(
        fs.inputs,
        noisy,
        seeds=range(p.seed, p.seed + p.mine_seeds),
        steps=p.mine_steps,
        hidden=p.mine_hidden,
        batch_size=p.mine_batch_size,
    )
    unreliable = r.unreliable or (not r.saturated and disagrees(r.mean, exact))
    return _per_target(
        fs,
        {"mine": r.mean, "mine_std": r.std, "mine_saturated": float(r.saturated), "mine_unreliable": float(unreliable)},
    )


def probe_names(p: ProbeConfig) -> List[str]:
    return list(p.metrics) if p.metrics else PROBES.names()


def metric_names(probes: Iterable[str], feature_set: str = "clean") -> List[str]:
    """Every metric the probe families report per target of ``feature_set`` (with the NCC/linear ratio
    when both run)."""
    probes = [n for n in probes if n not in ("mine", "information") or feature_set in MINE_FEATURE_SETS]
    names = [m for name in probes for m in PROBES.get(name).metrics]
    return names + (["ncc_linear_ratio"] if {"ncc", "linear"} <= set(probes) else [])


def expected_keys(
    targets: Iterable[str],
    layers: Iterable[str],
    probes: Iterable[str],
    p: Optional[ProbeConfig] = None,
    schedule: Optional[Sequence[int]] = None,
    epoch: int = 0,
) -> List[str]:
    """The metric keys a complete probe of one checkpoint (at ``epoch``, of a trial whose probed epochs are
    ``schedule`` and probe settings ``p``) logs at ``layers``; without ``p``, every family at every layer."""
    probes = list(probes)
    targets = list(targets)
    out = []
    for layer in layers:
        fams = probes if p is None else families_at(p, probes, schedule, epoch, layer)
        out += [
            f"probe/{t}/{m}/{layer}"
            for t in targets
            for m in metric_names(fams, "sample" if t == "sample" else "clean")
        ]
    return out


@dataclass
class LayerScores:
    """One layer's ``{probe/<target>/<metric>/<layer>: value}``, and the targets skipped with why."""

    metrics: Dict[str, float]
    skipped: Dict[str, str]


def score_layer(
    layer: str, feature_sets: Iterable[FeatureSet], p: ProbeConfig, probes: Optional[List[str]] = None
) -> LayerScores:
    """Every probe family on every scorable target of every feature set of one layer."""
    probes = probe_names(p) if probes is None else probes
    scores: Scores = {}
    skipped: Dict[str, str] = {}
    for fs in feature_sets:
        for t in fs.targets:
            why = unscorable(t)
            if why is not None:
                skipped[t.name] = why
        fs = replace(fs, targets=[t for t in fs.targets if t.name not in skipped])
        if not fs.targets:
            continue
        for name in probes:
            scores.update(PROBES.get(name)(fs, p))
    for target in {t for t, _ in scores}:
        ncc, lin = scores.get((target, "ncc_test")), scores.get((target, "linear_test"))
        if ncc is not None and lin is not None:
            scores[(target, "ncc_linear_ratio")] = ncc / lin if lin > 0 else float("nan")
    return LayerScores({f"probe/{t}/{m}/{layer}": float(v) for (t, m), v in sorted(scores.items())}, skipped)
