#!/usr/bin/env bash
# Set everything up (into .venv/) and run the test suite. Extra arguments go to pytest
# (e.g. -m slow for the long end-to-end runs). "No tests ran" (pytest exit 5) is a failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh || exit $?
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" = "5" ]; then
    echo "[test] pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit "$rc"
