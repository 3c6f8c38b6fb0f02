"""MLflow under many writers: an ``mlflow server`` on PostgreSQL against one on SQLite, same run.

N writers at once (N = 16 and 64), the probe fan-out's pattern: each writer is its own process logging 10 batches
of 100 metrics -- ``probe/<target>/<metric>/<layer>`` keys, one batch per step, as a (checkpoint, layer) of probes
does -- to its own run through ``ssl_ray.metric_log.MetricWriter``, over HTTP to an ``mlflow server`` with the
workers a cluster's head runs (4, MLflow's default). The SQLite server keeps its database in a temporary
folder; the PostgreSQL server's database lives in a throwaway cluster started here (``benchmarks/servers.py``;
``--postgres URI`` names another). Both servers run side by side and each N runs on one, then the other.

For each backend and N:
- ``writes_per_s``: metric values written per second, from the moment every writer is ready (a barrier) to the
  last batch's answer;
- ``retried_http``: requests MLflow's HTTP client retried (urllib3: a 5xx, a broken connection);
  ``retried_busy``: batches our MetricWriter wrote again after the store said it was busy ("database is locked",
  a server whose connection pool stayed full); ``failed``: batches that failed after every retry;
- every value read back from the server's store: ``lost`` (a (key, step) logged and not there), ``duplicated``
  (a (key, step) there twice) and ``wrong`` (another value): all three must be 0, or the run exits 1.

The ratio is PostgreSQL's writes per second over SQLite's at the same N. Writes
``results/benchmarks/tracking_load.json``.

    .venv/bin/python benchmarks/tracking_load.py            # N = 16, 64: about 3 minutes on 2 cores
    .venv/bin/python benchmarks/tracking_load.py --quick    # N = 16, 5 batches of 40, 1-worker servers (default suite)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from servers import mlflow_server, postgres  # noqa: E402

TARGETS = ["sample", "class", "superclass", "permuted_1.0"] + [f"random_{r / 10:.1f}" for r in range(11)]
METRICS = ["ncc_train", "ncc_test", "linear_val", "linear_test", "cdnv", "geometry_R", "geometry_D"]


def key_names(writer: int, n: int) -> list:
    layer = f"block{writer % 4 + 1}"
    return [
        f"probe/{TARGETS[i % len(TARGETS)]}/{METRICS[i // len(TARGETS) % len(METRICS)]}"
        f"_{i // (len(TARGETS) * len(METRICS))}"
        f"/{layer}"
        for i in range(n)
    ]


def value(writer: int, key: int, step: int) -> float:
    """Each (writer, key, step) its own value, exact in float64: a value written to the wrong place reads wrong."""
    return writer * 1e6 + key * 1e3 + step + 0.25


class Count(logging.Handler):
    """Retries, as the code that retries logs them: MLflow's HTTP client (urllib3) and our MetricWriter."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.http = self.busy = 0

    def emit(self, record):
        msg = record.getMessage()
        self.http += msg.startswith("Incremented Retry")
        self.busy += msg.startswith("MLflow write retried")


def writer(base: str, run_id: str, index: int, keys: int, batches: int, barrier, out) -> None:
    """One writer process: ``batches`` batches of ``keys`` values to its own run, then what it saw."""
    count = Count()
    for name in ("urllib3.util.retry", "ssl_ray.metric_log"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.DEBUG)
        lg.addHandler(count)
        lg.propagate = False
    from ssl_ray.metric_log import MetricWriter

    names = key_names(index, keys)
    w = MetricWriter(base, run_id)
    barrier.wait()
    t0, written, failed, errors = time.time(), 0, 0, []
    for step in range(batches):
        try:
            written += w.log({n: value(index, k, step) for k, n in enumerate(names)}, step=step)
        except Exception as e:  # noqa: BLE001 - a failed batch is counted (its values then count as lost)
            failed += 1
            errors.append(f"{type(e).__name__}: {str(e)[:200]}")
    out.put(
        dict(
            index=index,
            t0=t0,
            t1=time.time(),
            written=written,
            failed=failed,
            retried_http=count.http,
            retried_busy=count.busy,
            errors=errors[:3],
        )
    )


def read_back(store: str, runs: list, keys: int, batches: int) -> dict:
    """Every run's every key read back from the server's store (with MLflow's own client on the database, not
    over HTTP, so that reading does not dominate the run): lost, duplicated and wrong values."""
    from ssl_ray.metric_log import metric_histories
    from ssl_ray.tracking import client

    c = client(store)
    lost = duplicated = wrong = 0
    t0 = time.time()
    for index, run in enumerate(runs):
        names = key_names(index, keys)
        hist = metric_histories(c, run, names, threads=4)
        for k, name in enumerate(names):
            seen: dict = {}
            for m in hist.get(name, []):
                seen.setdefault(m.step, []).append(m.value)
            for step in range(batches):
                got = seen.pop(step, [])
                lost += not got
                duplicated += max(0, len(got) - 1)
                wrong += sum(v != value(index, k, step) for v in got)
            duplicated += sum(len(v) for v in seen.values())  # steps nobody wrote
    return dict(lost=lost, duplicated=duplicated, wrong=wrong, read_s=round(time.time() - t0, 2))


def phase(ctx, base: str, store: str, backend: str, n: int, keys: int, batches: int) -> dict:
    from ssl_ray.tracking import client, ensure_experiment

    c = client(base)
    exp = ensure_experiment(c, f"load-{backend}-{n}-{time.time_ns()}", base)
    runs = [c.create_run(exp, run_name=f"writer-{i}").info.run_id for i in range(n)]
    barrier, out = ctx.Barrier(n + 1), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(base, runs[i], i, keys, batches, barrier, out)) for i in range(n)]
    for p in procs:
        p.start()
    barrier.wait(timeout=300)
    t0 = time.time()
    done = [out.get(timeout=900) for _ in procs]
    seconds = max(d["t1"] for d in done) - t0
    for p in procs:
        p.join(timeout=60)
    values = sum(d["written"] for d in done)
    r = dict(
        backend=backend,
        writers=n,
        values=values,
        requests=n * batches,
        seconds=round(seconds, 2),
        writes_per_s=round(values / seconds, 1),
        requests_per_s=round(n * batches / seconds, 1),
        failed=sum(d["failed"] for d in done),
        retried_http=sum(d["retried_http"] for d in done),
        retried_busy=sum(d["retried_busy"] for d in done),
        errors=[e for d in done for e in d["errors"]][:5],
    )
    r["retried"] = r["retried_http"] + r["retried_busy"]
    r.update(read_back(store, runs, keys, batches))
    print(
        f"{backend:>10} N={n:<3} {values} values in {seconds:6.1f} s: {r['writes_per_s']:8.1f} values/s, "
        f"{r['requests_per_s']:6.1f} batches/s; retried {r['retried_http']} (HTTP) + {r['retried_busy']} (store busy), "
        f"failed {r['failed']}; read back: "
        f"lost {r['lost']}, duplicated {r['duplicated']}, wrong {r['wrong']} ({r['read_s']} s)",
        flush=True,
    )
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "tracking_load.json"))
    ap.add_argument(
        "--quick",
        action="store_true",
        help="N = 16 only, 5 batches of 40 keys, servers of 1 worker: the default suite's run",
    )
    ap.add_argument("--writers", type=int, nargs="+", help="the N to measure (default 16 64; quick: 16)")
    ap.add_argument("--keys", type=int, help="keys per batch (default 100: a layer's probe values; quick: 40)")
    ap.add_argument("--batches", type=int, help="batches per writer, one per step (default 10; quick: 5)")
    ap.add_argument(
        "--server-workers",
        type=int,
        help="each mlflow server's workers (default 4, MLflow's and cluster.yaml's; quick: 1)",
    )
    ap.add_argument(
        "--postgres",
        metavar="URI",
        help="an existing PostgreSQL database (postgresql+psycopg://...) instead of a throwaway cluster",
    )
    args = ap.parse_args()
    ns = args.writers or ([16] if args.quick else [16, 64])
    keys = args.keys or (40 if args.quick else 100)
    batches, workers = args.batches or (5 if args.quick else 10), args.server_workers or (1 if args.quick else 4)
    if min(ns) < 1 or keys < 1 or batches < 1 or workers < 1:
        print("error: --writers, --keys, --batches and --server-workers must be positive", file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "1")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["ssl_ray.metric_log", "mlflow.tracking", "mlflow.entities"])
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        pg_uri = args.postgres or stack.enter_context(postgres()).database("mlflow_load")
        stores = {"sqlite": f"sqlite:///{Path(tmp) / 'mlflow.db'}", "postgresql": pg_uri}
        with ThreadPoolExecutor(max_workers=2) as pool:  # both servers start side by side
            futures = {
                b: pool.submit(
                    stack.enter_context, mlflow_server(Path(tmp) / b, backend=u, workers=workers, timeout=300)
                )
                for b, u in stores.items()
            }
            bases = {b: f.result() for b, f in futures.items()}
        print(f"servers up ({workers} workers each) in {time.time() - t_start:.0f} s", flush=True)
        results = [phase(ctx, bases[b], stores[b], b, n, keys, batches) for n in ns for b in stores]
    by = {(r["backend"], r["writers"]): r for r in results}
    ratios = {str(n): round(by["postgresql", n]["writes_per_s"] / by["sqlite", n]["writes_per_s"], 2) for n in ns}
    totals = {k: sum(r[k] for r in results) for k in ("lost", "duplicated", "wrong", "failed", "retried")}
    report = {
        "benchmark": "tracking_load",
        "quick": args.quick,
        "writers": ns,
        "keys_per_batch": keys,
        "batches_per_writer": batches,
        "server_workers": workers,
        "postgres": "given" if args.postgres else "throwaway cluster (benchmarks/servers.py)",
        "results": results,
        "ratio_postgresql_vs_sqlite": ratios,
        **totals,
        "seconds": round(time.time() - t_start, 1),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        "postgresql/sqlite writes per second: "
        + ", ".join(f"N={n}: {ratios[str(n)]:.2f}x" for n in ns)
        + f"; lost {totals['lost']}, duplicated {totals['duplicated']}, wrong {totals['wrong']}, "
        f"failed {totals['failed']}, retried {totals['retried']} ({report['seconds']:.0f} s)"
    )
    return 0 if totals["lost"] == totals["duplicated"] == totals["wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
