"""The README's set-up command, run for real: a second run finds .venv up to date by its stamp and installs nothing.
(That `.ci/run` is the README's test command and that "no tests ran" fails it: tests/unit/test_ci.py.)"""

import subprocess

from conftest import ROOT


def test_a_second_setup_installs_nothing():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert not any(step in proc.stdout for step in ("[setup] creating", "[setup] installing")), proc.stdout
