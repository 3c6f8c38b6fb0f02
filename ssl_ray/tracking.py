"""MLflow tracking: one experiment per sweep name, one parent run per sweep, one child run per trial.

Runs are found again by tags, never created twice: the parent by ``ssl_ray.sweep_dir``, a child by
``ssl_ray.trial_id``. Metric writes are idempotent: :class:`ssl_ray.metric_log.MetricWriter` logs a
``(key, step)`` only if the run has no value for it yet, so re-running an epoch or a probe never duplicates.

The URI defaults to a SQLite file under ``results/`` (``ssl_ray.config.default_mlflow_uri``).
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Set

from ssl_ray.errors import ConfigError
from ssl_ray.uris import is_database, mask_uri, sqlite_file, store_uri

if TYPE_CHECKING:  # mlflow is imported where a store is opened, never on the bad-input path
    from mlflow.tracking import MlflowClient

TAG_SWEEP_DIR = "ssl_ray.sweep_dir"
TAG_TRIAL_ID = "ssl_ray.trial_id"
TAG_TRIAL_DIR = "ssl_ray.trial_dir"  # where Ray Train keeps the trial's checkpoints
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
TAG_KIND = "ssl_ray.kind"
TAG_STATUS = "ssl_ray.status"  # a TrialStatus
TAG_STOP_REASON = "ssl_ray.stop_reason"
TAG_COMMAND = "ssl_ray.command"  # the command line that started the sweep
TAG_COMMIT = "ssl_ray.git_commit"
TAG_BANK_PATH = "ssl_ray.bank.path"
TAG_BANK_SEED = "ssl_ray.bank.seed_stream"
TAG_BANK_RUN = "ssl_ray.bank.run_id"  # on a sweep's run: the run of the bank its random_<r> targets come from
# set by a trial's rank 0
TAG_LOADER = "ssl_ray.loader"
TAG_STEPS_PER_EPOCH = "ssl_ray.steps_per_epoch"
TAG_WORLD_SIZE = "ssl_ray.world_size"
TAG_PRECISION = "ssl_ray.precision"
TAG_TRAIN_NODES = "ssl_ray.train.nodes"
TAG_DDP_BACKEND = "ssl_ray.ddp_backend"
TAG_RESUMED_FROM = "ssl_ray.resumed_from"
TAG_CHECKPOINT_FALLBACK = "ssl_ray.checkpoint_fallback"
TAG_INIT_CHECKPOINT = "ssl_ray.init_checkpoint"
TAG_LR_FROM = "ssl_ray.lr_rescaled"  # a restored optimizer's lr changed to the trial's own (PBT)
TAG_PBT_PARENT = "ssl_ray.pbt.parent"  # the trial whose checkpoint PBT continued this one from, last time
TAG_PBT_LINEAGE = "ssl_ray.pbt.lineage"  # every exploit of this trial: "epoch <e> from <trial> (<its run id>)"
# set by the probe fan-out
TAG_PROBE_STATUS = "ssl_ray.probe.status"
TAG_PROBE_FAILURE = "ssl_ray.probe.failure"
TAG_PROBE_NODES = "ssl_ray.probe.nodes"  # the Ray node ids the trial's probe tasks ran on
TAG_PROBE_SKIPPED = "ssl_ray.probe.skipped"  # .<target>: why that target could not be scored (at any layer)
TAG_SUMMARY_LAYER = "ssl_ray.summary.layer"  # the layer a trial's summary/* metrics are read at

# Metric-name prefixes: train/<term>, probe/<target>/<metric>/<layer>, bank/<reading>, summary/<name>
TRAIN = "train/"
PROBE = "probe/"
BANK = "bank/"
SUMMARY = "summary/"


class TrialStatus(str, Enum):
    """How a trial (or the target-bank run) stands or ended: its ``ssl_ray.status`` tag and the ``status``
    of its last Tune result."""

    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"  # a non-finite loss or embedding stopped it
    COLLAPSED = "collapsed"  # its embeddings collapsed
    STOPPED = "stopped"  # the scheduler stopped it early
    ERRORED = "errored"
    REFUSED = "refused"  # a target bank that failed its checks

    def __str__(self) -> str:
        return self.value

    @property
    def usable(self) -> bool:
        """Whether its last probes are a result (a stopped trial's are: the scheduler chose to stop it)."""
        return self not in (TrialStatus.DIVERGED, TrialStatus.COLLAPSED, TrialStatus.ERRORED, TrialStatus.REFUSED)


HEALTH_STOPS = (TrialStatus.DIVERGED, TrialStatus.COLLAPSED)  # what a trial's own health check stops it for


_READY: Set[str] = set()


def client(uri: str) -> "MlflowClient":
    """An MLflow client. A SQLite store is opened the first time under a file lock: two sweeps that create
    the same database at the same moment would both run its migrations (alembic fails in one of them)."""
    from mlflow.tracking import MlflowClient

    # MLflow prints "View run <name> at: <uri>/#/..." whenever a run ends: the console has our own lines, and
    # that one would print a password the URI carries; nor a progress bar per artifact read (probes.csv)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    db = sqlite_file(uri)
    if db is None or uri in _READY:
        return MlflowClient(tracking_uri=store_uri(uri))
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            c = MlflowClient(tracking_uri=uri)
            c.search_experiments(max_results=1)  # opens the store: creates and migrates the database
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _READY.add(uri)
    return c


def existing_store(uri: str, what: str = "") -> str:
    """``uri``, for a command that only reads a store: a SQLite URI whose file does not exist is one ConfigError
    naming where it looked (opening it would create an empty store there as a side effect)."""
    db = sqlite_file(uri)
    if db is not None and not db.is_file():
        raise ConfigError(
            f"{what + ': ' if what else ''}no MLflow store at {db} (nothing has run there); "
            f"give the sweep's store with --mlflow-uri, as the sweep's summary prints it"
        )
    return uri


def artifact_root_for(uri: str) -> Optional[str]:
    """For a SQLite store, keep artifacts beside the database; for another database MLflow opens itself (no
    server between), under the results folder: never MLflow's default, ``./mlruns`` in the working directory."""
    db = sqlite_file(uri)
    if db is not None:
        return (db.parent / "mlartifacts").resolve().as_uri()
    if is_database(uri):
        from ssl_ray.config import default_results_dir

        return (default_results_dir() / "mlartifacts").as_uri()
    return None


EXPERIMENT_KIND = (
    "mlflow.experimentKind",
    "custom_model_development",
)  # MLflow's UI opens such an experiment on its runs


def ensure_experiment(c: MlflowClient, name: str, uri: str) -> str:
    """The experiment ``name`` (created, or restored if deleted), tagged ``mlflow.experimentKind``."""
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        exp_id = exp.experiment_id
        if exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:  # an experiment made before the tag
            c.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
        return exp_id
    try:
        return c.create_experiment(name, artifact_location=artifact_root_for(uri), tags=dict([EXPERIMENT_KIND]))
    except Exception:  # created concurrently by another process
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def tag_filter(tag: str, value: str) -> Optional[str]:
    """An MLflow filter clause ``tags.`tag` = value``, or None when no quoting can hold the value. MLflow's
    parser takes no escapes: a value with ``'`` goes in double quotes, one with ``"`` in single quotes."""
    if "'" not in value:
        return f"tags.`{tag}` = '{value}'"
    if '"' not in value:
        return f'tags.`{tag}` = "{value}"'
    return None


def search_by_tag(c: MlflowClient, experiment_id: str, tag: str, value: str, flt: str = "", **kw) -> list:
    """Runs whose tag ``tag`` is exactly ``value`` (and that match the filter ``flt``)."""
    clause = tag_filter(tag, value)
    if clause is not None:
        return c.search_runs([experiment_id], filter_string=" and ".join(x for x in (flt, clause) if x), **kw)
    kw.pop("max_results", None)  # no filter can say it: read the runs and compare here
    return [
        r
        for r in c.search_runs([experiment_id], filter_string=flt, max_results=50000, **kw)
        if r.data.tags.get(tag) == value
    ]


def _find_run(c: MlflowClient, experiment_id: str, tag: str, value: str) -> Optional[str]:
    runs = search_by_tag(c, experiment_id, tag, value, max_results=2)
    return runs[0].info.run_id if runs else None


def get_or_create_parent_run(
    uri: str, experiment: str, sweep_dir: str, params: Mapping[str, object], create: bool = False
) -> str:
    """The sweep's run, found by its directory; with ``create`` (a new sweep), an existing one is an error:
    a new sweep never joins an older sweep's run (one whose directory was deleted and made again)."""
    c = client(uri)
    exp_id = ensure_experiment(c, experiment, uri)
    run_id = _find_run(c, exp_id, TAG_SWEEP_DIR, sweep_dir)
    if run_id is not None and create:
        raise ConfigError(
            f"{mask_uri(uri)} already has a sweep run ({run_id}) for {sweep_dir}, from an earlier sweep whose "
            f"directory was removed; start this one with another --name"
        )
    if run_id is None:
        run = c.create_run(
            exp_id, run_name=f"sweep-{Path(sweep_dir).name}", tags={TAG_SWEEP_DIR: sweep_dir, TAG_KIND: "sweep"}
        )
        run_id = run.info.run_id
        log_params(c, run_id, params)
    else:
        c.update_run(run_id, status="RUNNING")
        log_missing_params(c, run_id, params)
    return run_id


def get_or_create_trial_run(
    uri: str, parent_run_id: str, trial_id: str, trial_name: str, params: Mapping[str, object]
) -> str:
    c = client(uri)
    exp_id = c.get_run(parent_run_id).info.experiment_id
    run_id = _find_run(c, exp_id, TAG_TRIAL_ID, trial_id)
    if run_id is None:
        tags = {TAG_TRIAL_ID: trial_id, TAG_PARENT: parent_run_id, TAG_KIND: "trial"}
        run_id = c.create_run(exp_id, run_name=trial_name, tags=tags).info.run_id
        log_params(c, run_id, params)
    else:
        c.update_run(run_id, status="RUNNING")
        log_missing_params(c, run_id, params)
    return run_id


def get_or_create_bank_run(uri: str, experiment: str, key_tag: str, key: str) -> str:
    """The run of a target bank's classifier, in the banks' own ``experiment`` (never among a sweep's trials),
    found again by its ``key_tag`` (not made twice) when the bank is trained again after a failure."""
    c = client(uri)
    exp_id = ensure_experiment(c, experiment, uri)
    run_id = _find_run(c, exp_id, key_tag, key)
    if run_id is not None:
        c.update_run(run_id, status="RUNNING")
        return run_id
    tags = {key_tag: key, TAG_KIND: "bank"}
    return c.create_run(exp_id, run_name=f"target bank {key}", tags=tags).info.run_id


def find_bank_run(uri: str, experiment: str, key_tag: str, key: str) -> Optional[str]:
    """The run of the bank tagged ``key_tag`` = ``key`` in the banks' ``experiment``; None where there is none
    (nothing is created)."""
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    return _find_run(c, exp.experiment_id, key_tag, key) if exp is not None else None


def find_trial_run(uri: str, parent_run_id: str, trial_id: str) -> Optional[str]:
    c = client(uri)
    return _find_run(c, c.get_run(parent_run_id).info.experiment_id, TAG_TRIAL_ID, trial_id)


def log_params(c: MlflowClient, run_id: str, params: Mapping[str, object]) -> None:
    """Every param but the unset ones (``None`` is left out, never logged as the string "None")."""
    from mlflow.entities import Param

    params = {k: v for k, v in params.items() if v is not None}
    items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def log_missing_params(c: MlflowClient, run_id: str, params: Mapping[str, object]) -> None:
    """The params a run found again lacks (its process killed after ``create_run``); the others left as they are."""
    have = c.get_run(run_id).data.params
    log_params(c, run_id, {k: v for k, v in params.items() if k not in have})


def child_runs(c: MlflowClient, parent_run_id: str, kind: str = "trial"):
    """The sweep's child runs of one kind: its trials, or its target ``bank``."""
    exp_id = c.get_run(parent_run_id).info.experiment_id
    return c.search_runs(
        [exp_id],
        filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}' and tags.`{TAG_KIND}` = '{kind}'",
        max_results=10000,
    )
