#!/usr/bin/env bash
# Set everything up (into .venv/), lint and check the formatting with ruff, and run the test suite. Extra arguments go
# to pytest (e.g. -m slow for the long end-to-end runs). "No tests ran" (pytest exit 5) is a failure.
#
# One process: the suite's sweeps keep both cores of a 2-core machine busy, and two pytest-xdist workers
# measured slower than one (17:42 + 2:10 against 17:10, the speed gates apart) -- each worker's Ray fights
# the other's for the same cores.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh || exit $?
# The linter and the formatter first (settings: pyproject.toml's [tool.ruff]); a finding fails the run before pytest.
.venv/bin/ruff check . || exit $?
.venv/bin/ruff format --check . || exit $?
t0=$SECONDS
.venv/bin/python -m pytest "$@"
rc=$?
echo "[test] pytest: exit $rc in $((SECONDS - t0)) s"
if [ "$rc" = "5" ]; then
    echo "[test] pytest collected no tests: treating that as a failure" >&2
    exit 1
fi
exit "$rc"
