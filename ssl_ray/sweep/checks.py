"""Whether a sweep can run, as the sweep's owner answers it to validation (``ssl_ray.validation``), before Ray
starts: the Ray cluster it names answers, its storage is a writable folder, a sampled key has the right type,
its search algorithm, scheduler and their metric work together (``search.py`` builds them), and every trial
and probe task fits the local machine (a request that can never be met would leave the sweep waiting forever)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from ssl_ray.config import TRIAL_DRIVER_CPUS, ExperimentConfig, SweepConfig
from ssl_ray.errors import ConfigError


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """A Ray cluster must answer at ``address`` ('auto', host:port or ray://host:port) before anything is
    written: Ray's own lookup for 'auto', then a TCP connection to its GCS (or client server) port."""
    import socket

    if address.startswith("ray://"):
        target = address[len("ray://") :].split("/")[0]
    else:
        from ray._private.services import canonicalize_bootstrap_address_or_die

        try:
            target = canonicalize_bootstrap_address_or_die(address)
        except (ConnectionError, ValueError) as e:
            raise ConfigError(
                f"--address {address}: no Ray cluster found ({str(e).split('. ')[0]}); start one "
                f"(ray start --head, or ray up cluster.yaml) or drop --address for a local one"
            ) from None
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: expected 'auto', host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers at {target} ({e.strerror or e}); start one "
            f"(ray start --head, or ray up cluster.yaml) or drop --address for a local one"
        ) from None


def check_storage(storage: Path) -> None:
    """The sweep's storage folder can be written or created (the default one lies in the results folder)."""
    from ssl_ray.config import default_results_dir
    from ssl_ray.paths import unwritable

    why = unwritable(storage)
    if why:
        env = os.environ.get("SSL_RAY_RESULTS")
        where = (
            f" (the results folder, SSL_RAY_RESULTS={env})"
            if env and storage == default_results_dir() / "sweeps"
            else ""
        )
        raise ConfigError(f"storage_path {str(storage)!r}{where}: {why}")


def _int_keys() -> set:
    """The dotted keys whose schema type is an integer."""
    out = set()
    for section in dataclasses.fields(ExperimentConfig):
        for f in dataclasses.fields(
            section.default_factory() if section.default_factory is not dataclasses.MISSING else section.default
        ):
            if str(f.type).replace("Optional[", "").rstrip("]") == "int":
                out.add(f"{section.name}.{f.name}")
    return out


def check_samplers(sweep: SweepConfig) -> None:
    ints = _int_keys()
    for d in sweep.dims():
        if d.continuous and d.key in ints:
            raise ConfigError(
                f"search_space.{d.key}: {d.kind} samples real numbers but {d.key} is an integer; "
                f"use {{randint: [low, high]}} or a list"
            )


def check_fits(exp: ExperimentConfig, local_cpus: Optional[int]) -> None:
    if local_cpus is None:
        return
    t = exp.train
    if t.gpus() > 0 and not local_gpus():
        raise ConfigError(
            f"a trial asks for {t.gpus():g} GPU(s) per worker but this machine has no CUDA GPU; run on a "
            f"GPU cluster (--address) or drop --gpus-per-worker / train.use_gpu"
        )
    p = exp.probe
    if p.num_gpus > 0 and not local_gpus():
        raise ConfigError(
            f"probe.num_gpus={p.num_gpus:g}, but this machine has no CUDA GPU: no probe task could ever start; "
            f"set probe.num_gpus=0 or run on a GPU cluster (--address)"
        )
    if p.num_cpus > local_cpus + 1e-9:
        raise ConfigError(
            f"probe.num_cpus={p.num_cpus:g}, but the local Ray instance has {local_cpus} CPUs: no probe task "
            f"could ever start; lower probe.num_cpus"
        )
    need = t.workers * t.cpus_per_worker + TRIAL_DRIVER_CPUS
    if need > local_cpus + 1e-9:
        raise ConfigError(
            f"a trial needs {need:g} CPUs (train.workers {t.workers} x train.cpus_per_worker "
            f"{t.cpus_per_worker:g} + {TRIAL_DRIVER_CPUS} for the trial's driver) but the local Ray instance "
            f"has {local_cpus}; lower --cpus-per-worker (fractions work, e.g. 0.95) or --workers"
        )


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_search(sweep: SweepConfig) -> None:
    """The search algorithm, the scheduler and the metric they read, refused in one line where they cannot
    work together (ssl_ray/sweep/search.py builds them)."""
    from ssl_ray.config import LOSS_METRIC, ONLINE_METRICS, SCHEDULERS, SEARCH_ALGS, check_choice, check_int

    check_choice("search_alg", sweep.search_alg, SEARCH_ALGS)
    check_choice("scheduler", sweep.scheduler, SCHEDULERS)
    check_int("search_seed", sweep.search_seed, lo=0, hi=2**31 - 1)
    check_int("pbt_interval", sweep.pbt_interval, lo=1, hi=10000)
    if sweep.scheduler_mode is not None:
        check_choice("scheduler_mode", sweep.scheduler_mode, ("min", "max"))
    dims = sweep.dims()
    _check_conditions(dims)
    every, metric = sweep.base.train.online_every, sweep.scheduler_metric
    known = (LOSS_METRIC,) + ONLINE_METRICS
    adaptive = sweep.scheduler != "fifo" or sweep.search_alg in ("optuna", "bohb")  # something reads the metric
    if metric not in known:
        raise ConfigError(f"scheduler_metric {metric!r}: nothing reports it; known: {', '.join(known)}")
    if adaptive and metric in ONLINE_METRICS and every == 0:
        raise ConfigError(
            f"scheduler_metric {metric}: nothing reports it, train.online_every is 0 (no online readings); "
            f"set train.online_every: 1"
        )
    if adaptive and metric in ONLINE_METRICS and every != 1:
        raise ConfigError(
            f"scheduler_metric {metric} is read at every epoch by the {_who(sweep)}, but train.online_every is "
            f"{every}; set train.online_every: 1"
        )
    objective_varies = [
        d.key for d in dims if d.key.startswith("objective.") and (d.kind != "grid" or len(d.values) > 1)
    ]
    ranks = sweep.scheduler in ("asha", "pbt") or sweep.search_alg == "bohb"
    if ranks and metric == LOSS_METRIC and objective_varies:
        raise ConfigError(
            f"{_who(sweep)} on {LOSS_METRIC} while {objective_varies[0]} is searched: losses of different "
            f"objectives or coefficients are not comparable; use scheduler_metric: online/knn_val"
        )
    if sweep.scheduler == "pbt":
        if sweep.search_alg not in ("grid", "random"):
            raise ConfigError(
                f"scheduler pbt evolves its own population; use search_alg random, not {sweep.search_alg}"
            )
        if isinstance(sweep.base.train.epochs, int) and sweep.pbt_interval >= sweep.base.train.epochs:
            raise ConfigError(
                f"pbt_interval {sweep.pbt_interval} must be below train.epochs {sweep.base.train.epochs} "
                f"(PBT acts every pbt_interval epochs)"
            )
        if not pbt_keys(sweep):
            raise ConfigError(
                "scheduler pbt perturbs optim.lr and objective coefficients, but none is searched on a "
                "{uniform|loguniform: [low, high]} range"
            )
    if sweep.search_alg in ("optuna", "bohb"):
        grid = [d.key for d in dims if d.kind == "grid"]
        if grid:
            raise ConfigError(
                f"search_alg {sweep.search_alg} samples every key, but search_space.{grid[0]} is a grid "
                f"list; write {{choice: [...]}} (or use search_alg: grid)"
            )
    if sweep.search_alg == "bohb" and sweep.scheduler != "fifo":
        raise ConfigError(
            f"search_alg bohb brings its own scheduler (HyperBandForBOHB); leave scheduler at fifo, "
            f"got {sweep.scheduler}"
        )


def pbt_keys(sweep: SweepConfig) -> list:
    """The searched keys PBT may perturb: optim.lr and the objective's coefficients, on continuous ranges."""
    return [
        d
        for d in sweep.dims()
        if d.continuous
        and not d.when
        and (d.key == "optim.lr" or (d.key.startswith("objective.") and d.key != "objective.name"))
    ]


def _who(sweep: SweepConfig) -> str:
    return {"asha": "ASHA scheduler", "pbt": "PBT scheduler"}.get(sweep.scheduler, f"{sweep.search_alg} search")


def _check_conditions(dims) -> None:
    """A ``when`` names unconditional searched keys. (A value they never take is allowed: narrowing
    ``--search objective.name=...`` leaves the other objectives' coefficients unsearched.)"""
    seen = {d.key for d in dims if not d.when}
    for d in dims:
        for k in d.when:
            if k not in seen:
                raise ConfigError(f"search_space.{d.key}.when: {k!r} is not a searched key without a when of its own")
