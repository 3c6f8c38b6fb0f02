"""Probe fan-out: a trial's whole probe suite, run serially and through Ray on every core, same run.

The trial is a real trained one (the default sweep's base config; ``trained.py``) with all of its kept
checkpoints. Every probe family (NCC, linear, CDNV, geometry, MINE) on every target set and layer:

- ``serial``: one process, one thread, ``probe_checkpoint`` on each checkpoint in turn;
- ``ray``: ``ssl_ray.probes.fanout.ProbeFanout`` -- a features task per checkpoint and a score task per
  (checkpoint, layer), one CPU each, on a local Ray with every core -- logging to a scratch MLflow
  store as a sweep does.

Parallel efficiency = serial time / (Ray time x cores). It writes ``results/benchmarks/probe_fanout.json``.

    .venv/bin/python benchmarks/probe_fanout.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from trained import trained_checkpoints  # noqa: E402

from ssl_ray.models.build import load_model  # noqa: E402
from ssl_ray.probes.engine import probe_checkpoint  # noqa: E402


def serial(ckpts) -> tuple[float, int]:
    torch.set_num_threads(1)
    n = 0
    t0 = time.perf_counter()
    for _, path in ckpts:
        n += len(probe_checkpoint(path)[1])
    return time.perf_counter() - t0, n


def through_ray(ckpts, cores: int) -> tuple[float, int]:
    import ray
    from mlflow.tracking import MlflowClient

    from ssl_ray.probes.fanout import ProbeFanout

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        c = MlflowClient(uri)
        run_id = c.create_run(c.create_experiment("probe_fanout", artifact_location=Path(tmp).as_uri())).info.run_id
        model, cfg, _ = load_model(ckpts[-1][1])
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        try:
            # start one worker per core and import the engine there, as a running sweep's workers have
            ray.get(
                [
                    ray.remote(lambda: __import__("ssl_ray.probes.engine")).options(num_cpus=1).remote()
                    for _ in range(cores)
                ]
            )
            t0 = time.perf_counter()
            fan = ProbeFanout.from_config(uri, cfg.probe, write_tables=False)
            fan.submit("bench", run_id, ckpts, model.taps)
            fan.drain(progress=False)
            wall = time.perf_counter() - t0
        finally:
            ray.shutdown()
        logged = len([k for k in c.get_run(run_id).data.metrics if k.startswith("probe/")])
        if fan.failures:
            raise RuntimeError(f"probe tasks failed: {fan.failures}")
        return wall, logged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "probe_fanout.json"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    args = ap.parse_args()
    ckpts = trained_checkpoints(args.epochs)
    t_ray, keys = through_ray(ckpts, args.cores)
    t_serial, values = serial(ckpts)
    report = {
        "benchmark": "probe_fanout",
        "checkpoints": [e for e, _ in ckpts],
        "layers": load_model(ckpts[-1][1])[0].taps,
        "metric_keys": keys,
        "values": values,
        "cores": args.cores,
        "serial_s": round(t_serial, 2),
        "ray_s": round(t_ray, 2),
        "speedup": round(t_serial / t_ray, 2),
        "parallel_efficiency": round(t_serial / (t_ray * args.cores), 3),
        "split": "features task per checkpoint, score task per (checkpoint, layer), 1 CPU each",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"a trial's probes ({len(ckpts)} checkpoints x {len(report['layers'])} layers, every metric): serial "
        f"{t_serial:.1f}s, "
        f"Ray on {args.cores} cores {t_ray:.1f}s -> speed-up {report['speedup']:.2f}x, "
        f"parallel efficiency {report['parallel_efficiency']:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
