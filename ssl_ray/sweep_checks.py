"""The checks of a sweep as a whole, before Ray starts: the Ray cluster it names answers, its storage is a
writable folder, a sampled key has the right type, and every trial and probe task fits the local machine
(a request that can never be met would leave the sweep waiting forever)."""

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
        target = address[len("ray://"):].split("/")[0]
    else:
        from ray._private.services import canonicalize_bootstrap_address_or_die

        try:
            target = canonicalize_bootstrap_address_or_die(address)
        except (ConnectionError, ValueError) as e:
            raise ConfigError(f"--address {address}: no Ray cluster found ({str(e).split('. ')[0]}); start one "
                              f"(ray start --head, or ray up cluster.yaml) or drop --address for a local one") from None
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r}: expected 'auto', host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"--address {address}: no Ray cluster answers at {target} ({e.strerror or e}); start one "
                          f"(ray start --head, or ray up cluster.yaml) or drop --address for a local one") from None


def check_storage(storage: Path) -> None:
    probe = storage
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError(f"storage_path {str(storage)!r}: {probe} is not a writable directory")


def _int_keys() -> set:
    """The dotted keys whose schema type is an integer."""
    out = set()
    for section in dataclasses.fields(ExperimentConfig):
        for f in dataclasses.fields(section.default_factory() if section.default_factory is not dataclasses.MISSING
                                    else section.default):
            if str(f.type).replace("Optional[", "").rstrip("]") == "int":
                out.add(f"{section.name}.{f.name}")
    return out


def check_samplers(sweep: SweepConfig) -> None:
    ints = _int_keys()
    for d in sweep.dims():
        if d.kind in ("uniform", "loguniform") and d.key in ints:
            raise ConfigError(f"search_space.{d.key}: {d.kind} samples real numbers but {d.key} is an integer; "
                              f"use {{randint: [low, high]}} or a list")


def check_fits(exp: ExperimentConfig, local_cpus: Optional[int]) -> None:
    if local_cpus is None:
        return
    t = exp.train
    if t.gpus() > 0 and not local_gpus():
        raise ConfigError(f"a trial asks for {t.gpus():g} GPU(s) per worker but this machine has no CUDA GPU; run on a "
                          f"GPU cluster (--address) or drop --gpus-per-worker / train.use_gpu")
    p = exp.probe
    if p.num_gpus > 0 and not local_gpus():
        raise ConfigError(f"probe.num_gpus={p.num_gpus:g}, but this machine has no CUDA GPU: no probe task could ever start; "
                          f"set probe.num_gpus=0 or run on a GPU cluster (--address)")
    if p.num_cpus > local_cpus + 1e-9:
        raise ConfigError(f"probe.num_cpus={p.num_cpus:g}, but the local Ray instance has {local_cpus} CPUs: no probe task "
                          f"could ever start; lower probe.num_cpus")
    need = t.workers * t.cpus_per_worker + TRIAL_DRIVER_CPUS
    if need > local_cpus + 1e-9:
        raise ConfigError(f"a trial needs {need:g} CPUs (train.workers {t.workers} x train.cpus_per_worker "
                          f"{t.cpus_per_worker:g} + {TRIAL_DRIVER_CPUS} for the trial's driver) but the local Ray instance "
                          f"has {local_cpus}; lower --cpus-per-worker (fractions work, e.g. 0.95) or --workers")


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
