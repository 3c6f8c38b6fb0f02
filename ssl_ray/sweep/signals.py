"""A sweep's driver stopped by SIGTERM or SIGINT ends cleanly: no traceback or native stack dump, its MLflow run
marked KILLED, Ray shut down, and one line naming the command that continues it. Exit code 128 + the signal's
number (143, 130), as a shell reports a process a signal ended.

The handler only notes the signal: raising from it would surface inside whichever Ray call the main thread is
in (a Cython ``ray.wait`` then fails with ``SystemError``). The driver's loops ask :func:`check` between steps,
which raises :class:`SweepInterrupted` in plain Python: Tune's event loop (the probe callback's ``on_step_end``,
every 0.1 s), the probe drain, and :func:`interruptible` around a blocking call (the bank's ``trainer.fit``).
``ray.init`` installs its own SIGTERM handler and Tune its own SIGINT one (``TUNE_DISABLE_SIGINT_HANDLER`` turns
that off: ``sweep.environment``), so :func:`catch_signals` runs after ``ray.init``. Tune's experiment state, saved
as it goes, is what ``ssl-ray resume`` continues from.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable, List

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_noted: List[int] = []


class SweepInterrupted(BaseException):
    """Raised by :func:`check` once a signal is noted (a BaseException, as KeyboardInterrupt: the engines'
    ``except Exception`` clauses let it through)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.sweep_dir = ""

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _note(signum, frame) -> None:
    if not _noted:
        _noted.append(signum)


def catch_signals() -> None:
    """SIGTERM and SIGINT are noted for :func:`check` (in the main thread; elsewhere nothing changes)."""
    _noted.clear()
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _note)


def check() -> None:
    """Raise :class:`SweepInterrupted` if a signal was noted."""
    if _noted:
        raise SweepInterrupted(_noted[0])


def interruptible(fn: Callable[[], Any], every_s: float = 0.2) -> Any:
    """``fn()`` in a daemon thread, the main thread asking :func:`check` every ``every_s`` while it runs: a blocking
    engine call (a ``TorchTrainer.fit``) that a signal can end. Its result, or its exception, is returned/raised."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True, name="ssl_ray-interruptible")
    t.start()
    while t.is_alive():
        t.join(every_s)
        check()
    if "error" in out:
        raise out["error"]
    return out.get("value")
