"""Fault injection, for testing that failures are survived: real exceptions and real process deaths at
named sites in real Ray workers.

Set ``SSL_RAY_FAULTS`` to a JSON file holding a list of rules::

    [{"site": "probe.score", "match": {"epoch": 1, "layer": "block1"}, "times": 1, "action": "raise"}]

:func:`maybe_fail` at a site fires the first rule whose ``site`` and ``match`` (a subset of the call's
context) agree, at most ``times`` times over all processes: each firing claims a marker file next to
the JSON with ``O_EXCL``, so the count holds across Ray workers and retries. ``action`` is ``raise``
(an :class:`InjectedFault`), ``exit`` (``os._exit(1)``) or ``sigkill`` (the process kills itself).
With the variable unset, a call costs one dictionary lookup.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

ENV = "SSL_RAY_FAULTS"


class InjectedFault(RuntimeError):
    pass


def _claim(rules_path: Path, index: int, times: int) -> bool:
    for k in range(times):
        marker = rules_path.with_name(f"{rules_path.name}.fired.{index}.{k}")
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            continue
    return False


def maybe_fail(site: str, **context) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    rules_path = Path(path)
    rules = json.loads(rules_path.read_text())
    for i, rule in enumerate(rules):
        if rule.get("site") != site:
            continue
        if any(context.get(k) != v for k, v in (rule.get("match") or {}).items()):
            continue
        if not _claim(rules_path, i, int(rule.get("times", 1))):
            continue
        action = rule.get("action", "raise")
        if action == "exit":
            os._exit(1)
        if action == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault at {site} {context}")


def fired(rules_path: str | Path) -> int:
    """How many times the rules in ``rules_path`` have fired so far."""
    p = Path(rules_path)
    return len(list(p.parent.glob(f"{p.name}.fired.*")))
