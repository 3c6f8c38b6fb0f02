"""Idempotent metric logging to one MLflow run, and reading metric histories back.

:class:`MetricWriter` logs a ``(key, step)`` only if the run has no value for it yet, so re-running an epoch
or a probe never duplicates. It remembers every history it read and every value it wrote, so that a table of
the run's values (``ssl_ray.probes.table``) costs no request for the keys it wrote itself: MLflow reads a
history with one request per key, and a trial has about a thousand probe keys (2,558 requests and 25 s of
the driver's time per tiny sweep over HTTP, before this cache).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Dict, Iterable, List, Mapping, Optional, Set

from ssl_ray.tracking import client

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call
log = logging.getLogger(__name__)


class MetricWriter:
    """Idempotent metric logging to one run: a ``(key, step)`` that has a value is never written again.

    What it knows of a key is the history MLflow held when the writer first asked (or nothing, for a key the
    run did not have when the writer first looked at it), plus what the writer logged since. A value that
    another process logs to the same run meanwhile is not seen (nor was it before the cache: the steps a
    writer skips were always those it knew of)."""

    def __init__(self, uri: str, run_id: str):
        self.client = client(uri)
        self.run_id = run_id
        self._hist: Dict[str, List["Metric"]] = {}
        self._present: Optional[Set[str]] = None

    def _history(self, key: str) -> List["Metric"]:
        """The key's values as far as this writer knows them."""
        self.prefetch([key])
        return self._hist[key]

    def prefetch(self, keys: Iterable[str], exist: bool = False) -> None:
        """Read the histories of ``keys`` not known yet, 8 requests at a time; those of keys the run did not
        have when the writer first looked are empty (no request), unless ``exist``: the run has them now."""
        if self._present is None:  # keys the run has at all: the others need no history query
            self._present = set(self.client.get_run(self.run_id).data.metrics)
        todo = [k for k in keys if k not in self._hist]
        fetch = [k for k in todo if exist or k in self._present]
        self._hist.update({k: [] for k in todo})
        if fetch:
            self._hist.update(
                (k, list(v)) for k, v in metric_histories(self.client, self.run_id, fetch, threads=8).items()
            )

    def has(self, key: str, step: int) -> bool:
        return any(m.step == int(step) for m in self._history(key))

    def histories(self, keys: Iterable[str]) -> Dict[str, List["Metric"]]:
        """``{key: [Metric, ...]}`` for keys the run has: a request only for a key this writer has not seen."""
        keys = list(keys)
        self.prefetch(keys, exist=True)
        return {k: list(self._hist[k]) for k in keys}

    def log(self, metrics: Mapping[str, float], step: int, restate: bool = False) -> int:
        """Log the metrics that are new at ``step``; returns how many were written. ``restate``: log them even
        where a value exists (a summary that a backfill changes: MLflow shows the newest)."""
        ts = int(time.time() * 1000)
        from mlflow.entities import Metric

        if not restate:
            self.prefetch(metrics)
        new = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items() if restate or not self.has(k, step)]
        for i in range(0, len(new), MAX_BATCH):
            batch = new[i : i + MAX_BATCH]
            _retry(lambda batch=batch: self.client.log_batch(self.run_id, metrics=batch))
        for m in new:  # a restated key this writer never read stays unread (its history is not needed)
            if m.key in self._hist:
                self._hist[m.key].append(m)
        return len(new)

    def set_tags(self, tags: Mapping[str, object]) -> None:
        from mlflow.entities import RunTag

        _retry(lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))


# Errors after which the write did not happen, so that writing again cannot duplicate: SQLite's lock, and a
# server whose connection pool stayed full for its timeout (an `mlflow server` on SQLite under 64 writers
# answered 201 of 640 batches so: benchmarks/tracking_load.py).
TRANSIENT = ("locked", "queuepool limit")  # "database is locked", "database table is locked"


def _retry(fn, attempts: int = 5, delay: float = 0.5):
    """Back off and retry a write that failed for a TRANSIENT reason (a busy store)."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - MLflow wraps the store's errors in MlflowException
            if not any(t in str(e).lower() for t in TRANSIENT) or i == attempts - 1:
                raise
            log.debug("MLflow write retried (attempt %d of %d): %s", i + 2, attempts, str(e)[:200])
            time.sleep(delay * (2**i))


def metric_histories(c: MlflowClient, run_id: str, keys: Iterable[str], threads: int = 1) -> Dict[str, list]:
    """``{key: [Metric, ...]}``: one request per key (MLflow has no bulk history read for one run), ``threads``
    of them at a time; a server answers them concurrently."""
    keys = list(keys)
    if threads <= 1:
        return {k: c.get_metric_history(run_id, k) for k in keys}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(keys, pool.map(lambda k: c.get_metric_history(run_id, k), keys)))
