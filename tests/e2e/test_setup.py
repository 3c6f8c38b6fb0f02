"""The README's commands: setup is idempotent and fast the second time; .ci/run is the test command."""

import re
import subprocess
import time

from conftest import ROOT


def test_second_setup_is_fast_and_does_not_reinstall():
    t0 = time.time()
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert time.time() - t0 < 15


def test_readme_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(bash scripts/\w+\.sh)[^\n]*\n```", readme)
    assert blocks == ["bash scripts/run.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert 'if [ "$rc" = "5" ]' in test_sh  # "no tests ran" fails CI
