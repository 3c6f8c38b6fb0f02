"""What a report reads: one sweep's trials, their hyperparameters and every metric history, from MLflow.

A sweep is named either by its directory (``results/sweeps/<name>``: its saved settings give the
tracking URI, and the parent run is the one tagged with that directory) or by its MLflow experiment
name (the newest parent run of that experiment). Everything comes back as tidy tables:

* ``probes``: one row per (trial, epoch, layer, target, metric): each trial's ``probes/probes.csv`` artifact
  (every probe value; the fan-out rewrites it after each checkpoint, retries and backfills included);
* ``train``: one row per (trial, epoch, metric) of ``train/*``.

Bad input (no such directory or experiment, no sweep run, no probe metrics yet) raises
:class:`ssl_ray.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

from ssl_ray.errors import ConfigError
from ssl_ray.probes.choice import layer_order
from ssl_ray.probes.plan import INPUT_LAYER
from ssl_ray.tracking import TrialStatus

# Short names of the hyperparameters a reader compares (the study's RES-L-H and VICReg's λ/µ/ν).
SHORT_NAMES = {
    "model.width": "H",
    "model.depth": "L",
    "objective.name": "objective",
    "model.backbone": "backbone",
    "optim.lr": "lr",
}


def short_name(key: str, default: Optional[str] = None) -> str:
    """How a reader names a hyperparameter: RES-L-H's L and H, and each objective's own symbols (λ, µ, ν, τ),
    as the objective declares them."""
    if key in SHORT_NAMES:
        return SHORT_NAMES[key]
    if key.startswith("objective."):
        from ssl_ray.config.hparams import symbol_of

        symbol = symbol_of(key[len("objective.") :])
        if symbol is not None:
            return symbol
    return key if default is None else default


UNUSABLE = tuple(s.value for s in TrialStatus if not s.usable)  # trial statuses whose last probes are not a result


@dataclass
class Trial:
    trial_id: str
    run_id: str
    status: str
    params: Dict[str, str]
    trial_dir: Optional[str]
    label: str = ""  # names this trial (its configuration, and "#<id>" among repeats)
    config: str = ""  # names its configuration: the hyperparameters that vary, every seed alike
    metrics: Dict[str, float] = field(default_factory=dict)  # the run's latest value of each metric

    @property
    def group(self) -> str:
        return self.config or self.label or self.trial_id


@dataclass
class SweepData:
    uri: str
    experiment: str
    parent_run_id: str
    parent_tags: Dict[str, str]
    trials: List[Trial]
    probes: pd.DataFrame  # trial_id, run_id, epoch, layer, target, metric, value
    train: pd.DataFrame  # trial_id, epoch, metric, value  (metric without the "train/" prefix)
    varied: List[str] = field(default_factory=list)  # params whose values differ between trials

    @property
    def layers(self) -> List[str]:
        """The network's probed layers, input to output (not the ``input`` pixels: :meth:`pixel_baseline`)."""
        return sorted((x for x in self.probes.layer.unique() if x != INPUT_LAYER), key=layer_order)

    def pixel_baseline(self, target: str, metric: str, trial_ids: Optional[List[str]] = None) -> float:
        """A target's ``metric`` on the pooled input pixels (the ``input`` layer), mean over ``trial_ids``
        (every trial: they share the probe images and splits); NaN where it was not probed."""
        rows = self.probe(target, metric, INPUT_LAYER)
        if trial_ids is not None:
            rows = rows[rows.trial_id.isin(trial_ids)]
        return float(rows.value.mean()) if len(rows) else math.nan

    @property
    def targets(self) -> List[str]:
        return sorted(self.probes.target.unique(), key=target_order)

    def usable(self) -> List[Trial]:
        """The trials whose results count (all of them if none does)."""
        return [t for t in self.trials if t.status not in UNUSABLE] or self.trials

    def configs(self) -> Dict[str, List[Trial]]:
        """Trials grouped by configuration (the seeds of one setting together), in trial order."""
        out: Dict[str, List[Trial]] = {}
        for t in self.trials:
            out.setdefault(t.group, []).append(t)
        return out

    def seeds_per_config(self) -> int:
        """The smallest number of trials behind one configuration (N of the error bars)."""
        return min(len(ts) for ts in self.configs().values()) if self.trials else 0

    def trial(self, trial_id: str) -> Trial:
        return next(t for t in self.trials if t.trial_id == trial_id)

    def probe(self, target: str, metric: str, layer: Optional[str] = None) -> pd.DataFrame:
        """Rows of one probe metric (at one layer, or every layer), sorted by trial and epoch."""
        p = self.probes
        sel = (p.target == target) & (p.metric == metric)
        if layer is not None:
            sel &= p.layer == layer
        return p[sel].sort_values(["trial_id", "epoch"])

    def last_epoch(self, trial_id: str) -> Optional[int]:
        e = self.probes.epoch[self.probes.trial_id == trial_id]
        return int(e.max()) if len(e) else None

    def final(self, trial_id: str, target: str, metric: str, layer: str) -> float:
        """The value at the trial's last probed checkpoint (NaN where it is missing)."""
        return float(self.finals(target, metric).get((trial_id, layer), math.nan))

    def finals(self, target: str, metric: str) -> Dict[Tuple[str, str], float]:
        """``{(trial, layer): value}`` of one probe metric at each trial's last probed checkpoint (read once: the
        selection asks for every trial and layer)."""
        cache = self.__dict__.setdefault("_finals", {})
        if (target, metric) not in cache:
            last = self.probes.groupby("trial_id").epoch.max()
            rows = self.probe(target, metric)
            rows = rows[rows.epoch == rows.trial_id.map(last)]
            cache[(target, metric)] = dict(zip(zip(rows.trial_id, rows.layer), rows.value))
        return cache[(target, metric)]


def target_order(name: str) -> Tuple[int, float]:
    """sample, class, superclass, random targets by growing randomness, then the permuted controls."""
    fixed = {"sample": 0, "class": 1, "superclass": 2}
    if name in fixed:
        return fixed[name], 0.0
    try:
        return (3 if name.startswith("random_") else 4), float(name.split("_", 1)[1])
    except (IndexError, ValueError):
        return 5, 0.0


def fmt_param(v: str) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{f:g}"


def trial_label(params: Dict[str, str], keys: List[str]) -> str:
    return " ".join(f"{short_name(k, k.split('.')[-1])}={fmt_param(params.get(k, '-'))}" for k in keys)


def resolve_sweep(target: str, uri: Optional[str]) -> Tuple[str, str, Optional[str]]:
    """``(tracking uri, experiment name, sweep directory or None)`` of a sweep directory or experiment name."""
    from ssl_ray.config import SWEEP_FILE, SweepConfig, check_sweep_name
    from ssl_ray.uris import check_tracking_uri

    path = Path(target).expanduser()
    if path.is_dir():
        settings = path / SWEEP_FILE
        if not settings.is_file():
            raise ConfigError(
                f"{target}: not a sweep directory (no {SWEEP_FILE}); give a sweep directory "
                f"(results/sweeps/<name>) or an MLflow experiment name"
            )
        cfg = SweepConfig.from_yaml(settings)
        check_sweep_name(cfg.name)  # it names the report's folder: never a path
        uri = uri or cfg.resolved_mlflow_uri()
        check_tracking_uri(uri)
        return uri, cfg.name, str(path.resolve())
    if "/" in target or target.startswith("."):
        raise ConfigError(f"{target}: no such sweep directory")
    from ssl_ray.config import default_mlflow_uri

    check_sweep_name(target)
    uri = uri or default_mlflow_uri()
    check_tracking_uri(uri)
    return uri, target, None


def load_sweep(target: str, uri: Optional[str] = None) -> SweepData:
    """Read the sweep named by ``target`` (a sweep directory or an experiment name) from MLflow. A
    trial's probes come from its ``probes.csv`` artifact (one request: every probe value), else (a trial whose
    probes have not finished a checkpoint yet) from its MLflow metric histories (the curated few)."""
    from ssl_ray.metric_log import metric_histories
    from ssl_ray.probes.table import COLUMNS, probe_rows, read_probe_table
    from ssl_ray.tracking import (
        TAG_KIND,
        TAG_STATUS,
        TAG_SWEEP_DIR,
        TAG_TRIAL_DIR,
        TAG_TRIAL_ID,
        child_runs,
        client,
        existing_store,
        search_by_tag,
    )

    uri, experiment, sweep_dir = resolve_sweep(target, uri)
    c = client(existing_store(uri, f"experiment {experiment!r}"))
    exp = c.get_experiment_by_name(experiment)
    if exp is None or exp.lifecycle_stage == "deleted":
        raise ConfigError(f"experiment {experiment!r}: not found in {uri}")
    flt = f"tags.`{TAG_KIND}` = 'sweep'"
    order = dict(order_by=["attributes.start_time DESC"], max_results=1)
    parents = (
        search_by_tag(c, exp.experiment_id, TAG_SWEEP_DIR, sweep_dir, flt, **order)
        if sweep_dir is not None
        else c.search_runs([exp.experiment_id], filter_string=flt, **order)
    )[:1]
    if not parents:
        raise ConfigError(
            f"experiment {experiment!r}: no sweep run in {uri}" + (f" for {sweep_dir}" if sweep_dir else "")
        )
    parent = parents[0]
    trials, prow, trow = [], [], []
    for run in child_runs(c, parent.info.run_id):
        tags = run.data.tags
        tid = tags.get(TAG_TRIAL_ID, run.info.run_id)
        trials.append(
            Trial(
                tid,
                run.info.run_id,
                tags.get(TAG_STATUS, "-"),
                dict(run.data.params),
                tags.get(TAG_TRIAL_DIR),
                metrics=dict(run.data.metrics),
            )
        )
        table = read_probe_table(c, run.info.run_id)
        if table is not None:
            prow += [(tid, run.info.run_id, *r) for r in table[COLUMNS[2:]].itertuples(index=False, name=None)]
        keys = [k for k in run.data.metrics if k.startswith(("train/",) if table is not None else ("probe/", "train/"))]
        hist = metric_histories(c, run.info.run_id, keys, threads=8)
        prow += probe_rows(tid, run.info.run_id, hist)
        trow += [
            (tid, m.step, k[len("train/") :], m.value) for k, h in hist.items() if k.startswith("train/") for m in h
        ]
    if not trials:
        raise ConfigError(f"experiment {experiment!r}: its sweep run has no trial runs yet")
    if not prow:
        raise ConfigError(
            f"experiment {experiment!r}: no probe metrics yet (probes run when a trial finishes; "
            f"`ssl-ray probe --run-id <run>` computes missing ones)"
        )
    probes = pd.DataFrame(prow, columns=COLUMNS)
    probes = probes.drop_duplicates(["trial_id", "epoch", "layer", "target", "metric"], keep="last")
    train = pd.DataFrame(trow, columns=["trial_id", "epoch", "metric", "value"]).drop_duplicates(
        ["trial_id", "epoch", "metric"], keep="last"
    )
    trials.sort(key=lambda t: t.trial_id)
    varied = sorted(
        k
        for k in {k for t in trials for k in t.params}
        if k != "train.seed" and len({t.params.get(k) for t in trials}) > 1
    )
    for t in trials:  # with nothing varied, every trial (every seed) is the one configuration
        t.label = t.config = trial_label(t.params, varied) if varied else "base configuration"
    counts: Dict[str, int] = {}
    for t in trials:
        counts[t.label] = counts.get(t.label, 0) + 1
    for t in trials:  # repeats of one setting (num_samples > 1, seeds) stay apart
        if counts[t.label] > 1:
            t.label += f" #{t.trial_id.rsplit('_', 1)[-1]}"
    return SweepData(uri, experiment, parent.info.run_id, dict(parent.data.tags), trials, probes, train, varied)
