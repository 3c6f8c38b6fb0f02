#!/usr/bin/env bash
# Set everything up (into .venv/) and run the test suite. "No tests ran" (pytest exit 5) is a failure.
#
#   bash scripts/test.sh               # the default suite, in two passes:
#                                      #   1. every test but the speed-ratio gates, in 2 processes (pytest-xdist,
#                                      #      one file per process at a time, so a file's shared sweep runs once);
#                                      #   2. the speed-ratio gates (marker "serial"), alone, so that no other
#                                      #      test shares their cores.
#   bash scripts/test.sh -m slow       # with arguments: one plain pytest run with them (e.g. the long
#                                      #   end-to-end runs, or one file), no parallel pass
#   SSL_RAY_TEST_WORKERS=1 bash ...    # the default suite's first pass in one process
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh || exit $?

pytest_pass() {  # pytest_pass LABEL ARGS...: one pytest run; exit 5 (nothing collected) counts as a failure
    local label=$1 rc t0=$SECONDS
    shift
    .venv/bin/python -m pytest "$@"
    rc=$?
    if [ "$rc" = "5" ]; then
        echo "[test] $label: pytest collected no tests: treating that as a failure" >&2
        rc=1
    fi
    echo "[test] $label: exit $rc in $((SECONDS - t0)) s"
    return "$rc"
}

if [ "$#" -gt 0 ]; then
    pytest_pass "pytest $*" "$@"
    exit $?
fi

DEFAULT="not slow and not bench"
t0=$SECONDS
pytest_pass "pass 1 (parallel)" -n "${SSL_RAY_TEST_WORKERS:-2}" --dist loadfile -m "$DEFAULT and not serial"
rc1=$?
pytest_pass "pass 2 (speed gates, alone)" -m "$DEFAULT and serial"
rc2=$?
echo "[test] default suite: $((SECONDS - t0)) s in all"
[ "$rc1" = "0" ] && [ "$rc2" = "0" ]
