"""The environment variables ssl_ray sets for Ray, in one place.

Each is set with ``setdefault`` (a value the user exported wins) by :func:`apply`, which the sweep's
driver calls before ``ray.init`` and each trial's process calls before building its ``TorchTrainer``
(a trial runs in a Ray worker process, which on a cluster does not inherit the driver's environment).
"""

from __future__ import annotations

import logging
import os

ENGINE_ENV = {
    # Ray Train V2 (the default on ray 2.60; set for older 2.x releases): a Tune trial builds a TorchTrainer.
    "RAY_TRAIN_V2_ENABLED": "1",
    # Ray Train's controller polls its workers this often. It bounds how long a reported checkpoint waits
    # before Ray Train registers it (what a restarted worker group resumes from); the default 2 s makes a
    # short epoch's synchronous report wait for the poll. Ray Train hands RAY_TRAIN_* variables of the
    # process that builds the trainer on to its controller.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    # The epoch-0 report (the initialization, before any step) has no loss; ASHA skips results without its
    # metric, but Tune's strict metric check would reject them first.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # Tune adds its CSV, JSON and TensorBoard loggers unless told not to; the sweep adds the CSV and JSON
    # ones itself (sweep/tuner.py) and leaves out TensorBoard's, whose console hint points at a tool this
    # project does not use (MLflow holds the curves).
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # SIGINT (and SIGTERM) end the sweep's driver through ssl_ray.sweep.signals: cleanly, with the resume command.
    # Tune's own SIGINT handler would first stop the trials and print its own restore instructions.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    # Tune's classic console reporter: silent at verbose 0 (the sweep prints one line per trial event), its
    # status tables with --verbose. The newer one prints a configuration box and a results path even when
    # silent.
    "RAY_AIR_NEW_OUTPUT": "0",
    # A local raylet starts at most this many worker processes at once (Ray's default: the CPU count). A sweep
    # on 2 cores needs about ten (each trial's function, its trainer's controller and workers, probe tasks);
    # at the default Ray prints "N worker processes have been started ... 4x the maximum expected" warnings.
    "RAY_worker_maximum_startup_concurrency": "8",
}


# Only on the local Ray that a sweep starts itself (no --address): Ray Train's preemption watcher, one more actor
# process per trial fit (a second or two of start-up each on a 2-core machine), watches for spot-instance
# preemption notices, which a local machine never gets. Workers of a local Ray inherit the driver's environment.
LOCAL_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def apply(local: bool = False) -> None:
    for k, v in {**ENGINE_ENV, **(LOCAL_ENV if local else {})}.items():
        os.environ.setdefault(k, v)


SLOW_CALLBACK_S = 2.0  # what counts as a slow Tune callback (Tune's default: 0.5 s)


class _Drop(logging.Filter):
    def __init__(self, *starts: str):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.starts)


def quiet_driver_logs() -> None:
    """The sweep driver's console holds our lines, not the engines' routine notes: MLflow's INFO lines
    (creating its database tables) and Ray's note that token authentication is on -- it stays on, as
    Ray sets it for a local cluster; ``RAY_AUTH_MODE`` chooses otherwise. Warnings of substance pass."""
    import mlflow  # noqa: F401  (it sets its logger's level on import: set ours after)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Tune warns when a callback holds its event loop over 0.5 s. Writing a finished trial's probes table, its
    # summary and status from the fan-out's poll takes 0.6-0.7 s on 2 cores beside a training trial, once per
    # trial: not a stall. Over 2 s it is, and Tune still says so. (Tune reads TUNE_WARN_THRESHOLD_S when it is
    # imported, before this runs; a value the user exported wins.)
    from ray.tune.utils.util import warn_if_slow

    warn_if_slow.DEFAULT_THRESHOLD = float(os.environ.get("TUNE_WARN_THRESHOLD_S", SLOW_CALLBACK_S))
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
        _Drop("Token authentication is enabled for this Ray cluster")
    )
