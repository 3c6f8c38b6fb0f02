"""CI runs the README's test command, and "no tests ran" fails it: ``.ci/run`` and ``scripts/test.sh`` run for real
in a copy of the repository's layout whose ``scripts/setup.sh`` and ``.venv/bin/python`` are stand-ins that record
how they were called (the real set-up: tests/e2e/test_setup.py)."""

import os
import shutil
import subprocess

import pytest
from conftest import ROOT

PYTHON = """#!/usr/bin/env bash
echo "python $*" >> "$STUB_LOG"
if [ "$1 $2" = "-m pytest" ]; then exit "$STUB_PYTEST_RC"; fi
"""
RUFF = """#!/usr/bin/env bash
echo "ruff $*" >> "$STUB_LOG"
if [ "$1" = "$STUB_RUFF_FAILS" ]; then exit 1; fi
"""


@pytest.fixture
def repo(tmp_path):
    for script in (".ci/run", "scripts/test.sh"):
        (tmp_path / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / script, tmp_path / script)
    (tmp_path / "scripts" / "setup.sh").write_text('echo setup >> "$STUB_LOG"\n')
    for tool, text in (("python", PYTHON), ("ruff", RUFF)):
        stub = tmp_path / ".venv" / "bin" / tool
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text(text)
        stub.chmod(0o755)
    return tmp_path


def run(repo, command, pytest_rc, ruff_fails=""):
    log = repo / "calls.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, STUB_LOG=str(log), STUB_PYTEST_RC=str(pytest_rc), STUB_RUFF_FAILS=ruff_fails)
    proc = subprocess.run(["bash", *command], cwd=repo / "scripts", env=env, capture_output=True, text=True, timeout=60)
    return proc, log.read_text().splitlines()


@pytest.mark.parametrize("pytest_rc, rc", [(0, 0), (1, 1), (2, 2), (5, 1)])
def test_ci_is_the_test_command_and_no_tests_is_a_failure(repo, pytest_rc, rc):
    proc, calls = run(repo, [str(repo / ".ci" / "run")], pytest_rc)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    # set up, lint and check the formatting, then the whole suite as configured
    assert calls == ["setup", "ruff check .", "ruff format --check .", "python -m pytest"], calls
    assert ("collected no tests" in proc.stderr) == (pytest_rc == 5)


def test_arguments_go_to_pytest(repo):
    proc, calls = run(repo, [str(repo / "scripts" / "test.sh"), "-m", "slow", "-k", "sweep"], 0)
    assert proc.returncode == 0 and calls[-1] == "python -m pytest -m slow -k sweep", calls


@pytest.mark.parametrize("step", ["check", "format"])
def test_a_ruff_finding_fails_ci_before_pytest(repo, step):
    proc, calls = run(repo, [str(repo / ".ci" / "run")], 0, ruff_fails=step)
    assert proc.returncode == 1 and not any(c.startswith("python -m pytest") for c in calls), calls
