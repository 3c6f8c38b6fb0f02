"""Search: how many trial-epochs each search method spends to come within 1 point of the best online k-NN
accuracy, against random search, in the same run.

The search space is the search recipe's (configs/search_digits.yaml) on a grid: the objective (VICReg,
SimCLR, Barlow Twins, MMCR, ARB), each objective's coefficients (only where they apply; ranges that include
collapse: VICReg with a variance weight mu of 0.1, SimCLR at a temperature of 2) and the width (8, 16, 32),
RES-4-H on the bundled digits, 8 epochs. 57 configurations.

1. **The table** (``results/benchmarks/search_table.json``): every configuration trained once by our worker
   loop's own steps (``ssl_ray.train.loop.build`` / ``train_epoch``, the collapse and divergence verdict)
   with its online reading (``ssl_ray.train.online``: weighted 20-NN accuracy on the probe's validation rows)
   after every epoch. It is the exhaustive search, so its best value bounds what any random search of the
   space can find: that best, minus 1 point, is the **target**. It is built once (``--rebuild`` again) on 2
   processes, about 10 minutes on 2 cores.
2. **The searches**: each method runs in real Ray Tune with ssl_ray's own builders
   (``ssl_ray.sweep.search.search_algorithm`` / ``trial_scheduler``, the conditional space of
   ``ssl_ray.sweep.space``), for ``--trials`` trials, one at a time; a trial replays its configuration's
   recorded readings, one ``tune.report`` per epoch (a tabular benchmark, as NAS-Bench and HPOBench do it:
   the search algorithms and schedulers are the real ones, the training they would trigger is looked up).
   A trial paused by HyperBand resumes from its Tune checkpoint, as ours do.

   - ``random_fifo``: random search, every trial to its end (the baseline);
   - ``optuna_asha``: Optuna's TPE with ASHA (grace period 2, reduction factor 2), as the recipe;
   - ``bohb``: TuneBOHB with HyperBandForBOHB.

   **Trial-epochs to target**: the epochs trained by all trials, in the order Tune received them, until
   one reading reaches the target, when the search is stopped; a method that never does within ``--trials``
   trials is charged everything it spent (a lower bound on its cost; ``reached`` false). Each method runs
   with ``--seeds`` seeds (search seeds 0, 1, 2, ...); ``speedup_vs_random[method]`` is random search's
   median trial-epochs over the method's (the seeds are independent draws, not pairs).

    .venv/bin/python benchmarks/search.py               # -> results/benchmarks/search.json, docs/search_benchmark.png
    .venv/bin/python benchmarks/search.py --rebuild     # retrain the table first
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssl_ray.config import ONLINE_METRICS  # noqa: E402  (a leaf: no torch, ray or mlflow)

EPOCHS = 8
WIDTHS = (8, 16, 32)
COEFFICIENTS = {  # per objective: the searched coefficients' grid values
    "vicreg": {"lam": [1.0, 10.0, 100.0], "mu": [0.1, 1.0, 25.0]},
    "simclr": {"temperature": [0.05, 0.2, 0.5, 2.0]},
    "barlow": {"lambd": [0.0005, 0.005, 0.05, 0.5]},
    "mmcr": {},
    "arb": {},
}
METRIC = ONLINE_METRICS[0]  # online/knn_val
TOLERANCE = 0.01  # one point of accuracy
METHODS = {"random_fifo": ("random", "fifo"), "optuna_asha": ("optuna", "asha"), "bohb": ("bohb", "fifo")}


def base_config(width: int = 16) -> Dict[str, Any]:
    return {
        "data": {"dataset": "digits", "image_size": 16, "augment": "digits", "views": 2},
        "model": {"backbone": "res", "depth": 4, "width": width, "projector_dims": [128, 128]},
        "objective": {"name": "vicreg"},
        "optim": {"optimizer": "adamw", "lr": 0.002, "batch_size": 256, "warmup_epochs": 1},
        "train": {"epochs": EPOCHS, "cpus_per_worker": 1.0},
    }


def configurations() -> List[Dict[str, Any]]:
    """Every point of the grid: ``{"name", "width", <coefficient>: value, ...}``."""
    out = []
    for name, coefs in COEFFICIENTS.items():
        for values in itertools.product(*coefs.values()):
            for width in WIDTHS:
                out.append({"name": name, "width": width, **dict(zip(coefs, values))})
    return out


def key(point: Dict[str, Any]) -> str:
    return json.dumps({k: point[k] for k in sorted(point)}, sort_keys=True)


def search_space() -> Dict[str, Any]:
    """The grid as a sweep's search space (each coefficient conditional on its objective)."""
    space: Dict[str, Any] = {"objective.name": {"choice": list(COEFFICIENTS)}, "model.width": {"choice": list(WIDTHS)}}
    for name, coefs in COEFFICIENTS.items():
        for coef, values in coefs.items():
            space[f"objective.{coef}"] = {"choice": values, "when": {"objective.name": name}}
    return space


# ---- 1. the table: every configuration trained once


def train_curve(point: Dict[str, Any]) -> Dict[str, Any]:
    """Train one configuration with the worker loop's steps; its online reading after every epoch."""
    import torch

    torch.set_num_threads(1)
    from ssl_ray.config import ExperimentConfig
    from ssl_ray.train.health import verdict
    from ssl_ray.train.loop import build, train_epoch
    from ssl_ray.train.online import KNN, OnlineReader
    from ssl_ray.train.precision import resolve
    from ssl_ray.validation import validate_experiment

    d = base_config(point["width"])
    d["objective"] = {"name": point["name"], **{k: v for k, v in point.items() if k not in ("name", "width")}}
    cfg = validate_experiment(ExperimentConfig.from_dict(d))
    device = torch.device("cpu")
    run = build(cfg, 0, 1, device)
    run.precision = resolve("off", "off", "off", device, 1)
    reader = OnlineReader.from_config(cfg)
    t0 = time.perf_counter()
    curve, stop = [reader(run.model, device)[KNN]], None
    for epoch in range(1, EPOCHS + 1):
        metrics, health, _ = train_epoch(run, epoch)
        stop = verdict(health.nonfinite_steps, health.embedding_std, cfg.train.collapse_std, epoch)
        curve.append(reader(run.model, device)[KNN])
        if stop is not None:
            break
    return {
        "point": point,
        "curve": curve,
        "stop": stop[1] if stop else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def build_table(path: Path, processes: int) -> Dict[str, Any]:
    import multiprocessing as mp

    points = configurations()
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(processes) as pool:
        rows = []
        for i, row in enumerate(pool.imap_unordered(train_curve, points), 1):
            rows.append(row)
            print(
                f"[table] {i}/{len(points)} {key(row['point'])}: best {max(row['curve']):.3f}"
                f"{' (' + row['stop'][:40] + ')' if row['stop'] else ''}",
                flush=True,
            )
    table = {
        "epochs": EPOCHS,
        "metric": METRIC,
        "build_s": round(time.perf_counter() - t0, 1),
        "processes": processes,
        "rows": sorted(rows, key=lambda r: key(r["point"])),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=1) + "\n")
    return table


# ---- 2. the searches, in real Ray Tune, replaying the table


def replay(config: Dict[str, Any], curves: Dict[str, List[float]], dims) -> None:
    """A trial: its configuration's recorded readings, one report per epoch, resumable from a Tune checkpoint. Its
    configuration is the sweep's own reading of the trial (``trial_experiment``: the typed base with the values Tune
    or the searcher chose), so the replay sees what a real trial would train."""
    from ray import tune

    from ssl_ray.config.sweep import trial_experiment

    exp = trial_experiment(config, dims)
    o = exp.objective
    point = {"name": o.name, "width": exp.model.width, **{c: getattr(o.params, c) for c in COEFFICIENTS[o.name]}}
    curve = curves[key(point)]
    start = 1
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            start = int((Path(d) / "epoch").read_text()) + 1
    for epoch in range(start, len(curve)):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "epoch").write_text(str(epoch))
            tune.report({"epoch": epoch, METRIC: curve[epoch]}, checkpoint=tune.Checkpoint.from_directory(d))


def run_search(method: str, seed: int, trials: int, curves, storage: Path, target: float) -> List[tuple]:
    """One search, until a reading reaches ``target`` (or ``trials`` trials); the ``(trial, epoch, reading)``
    of every report, in the order Tune received them."""
    from ray import tune

    from ssl_ray.config import ExperimentConfig, SweepConfig
    from ssl_ray.sweep.search import search_algorithm, trial_scheduler
    from ssl_ray.sweep.space import param_space

    alg, sched = METHODS[method]
    cfg = SweepConfig(
        name=f"{method}_{seed}",
        base=ExperimentConfig.from_dict(base_config()),
        search_space=search_space(),
        num_samples=trials,
        search_alg=alg,
        scheduler=sched,
        scheduler_metric=METRIC,
        search_seed=seed,
        asha_grace_period=2,
        asha_reduction_factor=2.0,
    )
    events: List[tuple] = []

    class Record(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            events.append((trial.trial_id, int(result["epoch"]), float(result[METRIC])))

    class UntilTarget(tune.Stopper):
        def __call__(self, trial_id, result) -> bool:
            return False

        def stop_all(self) -> bool:
            return any(v >= target for _, _, v in events)

    trainable = tune.with_parameters(replay, curves=curves, dims=cfg.dims())
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=param_space(cfg),
        tune_config=tune.TuneConfig(
            num_samples=trials,
            search_alg=search_algorithm(cfg),
            scheduler=trial_scheduler(cfg),
            max_concurrent_trials=1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=cfg.name, storage_path=str(storage), callbacks=[Record()], stop=UntilTarget(), verbose=0
        ),
    )
    tuner.fit()
    return events


def epochs_to_target(events: List[tuple], target: float) -> tuple[int, bool, float]:
    """``(trial-epochs spent until a reading reached target (all of them if none did), reached, best reading)``."""
    spent, best = 0, float("-inf")
    for _, epoch, value in events:
        spent += 1 if epoch >= 1 else 0
        best = max(best, value)
        if value >= target:
            return spent, True, best
    return spent, False, best


def draw(results: Dict[str, Any], out: Path) -> None:
    """The share of seeds that reached the target within x trial-epochs, per method (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    colors = {"random_fifo": "tab:grey", "optuna_asha": "tab:blue", "bohb": "tab:orange"}
    for method, runs in results.items():
        spent = sorted(e for e, ok in zip(runs["trial_epochs"], runs["reached"]) if ok)
        n = len(runs["trial_epochs"])
        xs = [1] + spent
        ys = [0.0] + [(i + 1) / n for i in range(len(spent))]
        ax.step(
            xs,
            ys,
            where="post",
            color=colors[method],
            lw=1.8,
            label=f"{method}: median {runs['median_trial_epochs']:g} trial-epochs ({runs['speedup']:.2f}x random)",
        )
        ax.axvline(runs["median_trial_epochs"], color=colors[method], ls=":", lw=1.0)
    ax.set_xscale("log")
    ax.set_xlabel("trial-epochs spent (all trials, in the order Tune received them)")
    ax.set_ylabel("share of seeds within 1 point of the best")
    ax.set_title(
        f"Search on the digits grid (57 configurations, {len(next(iter(results.values()))['trial_epochs'])} seeds "
        f"per method)",
        fontsize=10,
    )
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", default=str(ROOT / "results" / "benchmarks" / "search_table.json"))
    p.add_argument("--rebuild", action="store_true", help="train the table again even if it exists")
    p.add_argument("--processes", type=int, default=2, help="processes that train the table")
    p.add_argument("--seeds", type=int, default=10, help="repeats of each method (search seeds 0..N-1)")
    p.add_argument(
        "--trials", type=int, default=200, help="at most this many trials per search (each stops at the target)"
    )
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "search.json"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "search_benchmark.png"))
    args = p.parse_args(argv)
    table_path = Path(args.table)
    table = (
        json.loads(table_path.read_text())
        if table_path.exists() and not args.rebuild
        else build_table(table_path, args.processes)
    )
    curves = {key(r["point"]): r["curve"] for r in table["rows"]}
    reference = max(max(c) for c in curves.values())
    target = reference - TOLERANCE

    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    t0 = time.perf_counter()
    results: Dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for method in METHODS:
                runs = {"trial_epochs": [], "reached": [], "best": [], "trials": [], "events": []}
                for seed in range(args.seeds):
                    events = run_search(method, seed, args.trials, curves, Path(tmp), target)
                    spent, reached, best = epochs_to_target(events, target)
                    runs["trial_epochs"].append(spent)
                    runs["reached"].append(reached)
                    runs["best"].append(round(best, 4))
                    runs["trials"].append(len({t for t, _, _ in events}))
                    runs["events"].append(events)
                    print(
                        f"[search] {method} seed {seed}: {spent} trial-epochs to within {TOLERANCE:g} of "
                        f"{reference:.4f}"
                        f"{'' if reached else ' (never reached: all it spent)'}; best {best:.4f}",
                        flush=True,
                    )
                results[method] = runs
    finally:
        ray.shutdown()
    base = statistics.median(results["random_fifo"]["trial_epochs"])
    speedup = {}
    for method in METHODS:  # seeds are independent draws, not pairs: the ratio of the medians
        results[method]["median_trial_epochs"] = median = statistics.median(results[method]["trial_epochs"])
        results[method]["speedup"] = speedup[method] = round(base / median, 3)
    draw(results, Path(args.figure))
    report = {
        "benchmark": "search",
        "device": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "space": {
            "configurations": len(curves),
            "epochs": EPOCHS,
            "widths": list(WIDTHS),
            "coefficients": COEFFICIENTS,
        },
        "metric": METRIC,
        "reference_best": round(reference, 4),
        "tolerance": TOLERANCE,
        "target": round(target, 4),
        "table": {
            "path": str(table_path.relative_to(ROOT)) if table_path.is_relative_to(ROOT) else str(table_path),
            "build_s": table["build_s"],
            "collapsed_or_diverged": sum(1 for r in table["rows"] if r["stop"]),
        },
        "trials_per_search": args.trials,
        "seeds": args.seeds,
        "search_s": round(time.perf_counter() - t0, 1),
        "methods": {m: {k: v for k, v in r.items() if k != "events"} for m, r in results.items()},
        "speedup_vs_random": {m: s for m, s in speedup.items() if m != "random_fifo"},
        "command": " ".join(["python", "benchmarks/search.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"speedup vs random (median trial-epochs to target over {args.seeds} seeds, random's / the method's): "
        + ", ".join(f"{m} {s:.2f}x" for m, s in report["speedup_vs_random"].items())
    )
    print(f"wrote {out} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
