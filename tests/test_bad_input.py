"""Bad input gets a one-line error naming the bad value and exit code 2, before Ray starts.

Each case runs the real script in a subprocess. "Before Ray starts" is checked two ways: nothing is
written under the results directory, and the process never imports ray (``-X importtime``)."""

import subprocess

import pytest

from conftest import PY, ROOT

SCRIPT = str(ROOT / "experiments" / "sweep_vicreg.py")

CASES = [
    (["--objective", "simclrr"], "unknown objective 'simclrr'"),
    (["--backbone", "vit_huge"], "unknown backbone 'vit_huge'"),
    (["--search", "model.width=[0]"], "model.width must be >= 1, got 0"),
    (["--set", "model.depth=-2"], "model.depth must be >= 1, got -2"),
    (["--search", "model.width=[16,0]"], "model.width must be >= 1, got 0"),
    (["--search", "objective.lam=[-1]"], "objective.lam must be >= 0 for vicreg, got -1"),
    (["--search", "objective.mu=[-5]"], "objective.mu must be >= 0 for vicreg, got -5"),
    (["--search", "objective.nu=[-0.5]"], "objective.nu must be >= 0 for vicreg, got -0.5"),
    (["--set", "objective.gamma=0"], "objective.gamma must be > 0 for vicreg, got 0"),
    (["--set", "objective.lam=5"], "objective.lam is searched over [10.0, 25.0], so --set objective.lam would be ignored"),
    (["--batch-size", "1"], "optim.batch_size must be >= 2, got 1"),
    (["--epochs", "0"], "train.epochs must be >= 1, got 0"),
    (["--set", "objective.temperature=0.1"], "unknown hyperparameter objective.temperature"),
    (["--set", "model.widht=3"], "unknown key model.widht"),
    (["--epochs", "three"], "argument --epochs: invalid int value: 'three'"),
]


def run(args, env):
    return subprocess.run([PY, "-X", "importtime", SCRIPT, *args], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)


def assert_clean_failure(proc, message, env):
    from pathlib import Path

    err_lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert proc.returncode == 2, proc.stderr
    assert len(err_lines) == 1, err_lines
    assert err_lines[0].startswith("error: ")
    assert message in err_lines[0]
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "ray" not in imported and "mlflow" not in imported
    assert not Path(env["SSL_RAY_RESULTS"]).exists()
    assert proc.stdout == ""


@pytest.mark.parametrize("args,message", CASES, ids=[c[1][:40] for c in CASES])
def test_bad_flag(args, message, clean_env):
    assert_clean_failure(run(args, clean_env), message, clean_env)


def test_malformed_yaml(tmp_path, clean_env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbase:\n  train: {epochs: 3\n  model: [\n")
    proc = run(["--config", str(bad)], clean_env)
    assert_clean_failure(proc, f"malformed YAML in '{bad}' at line", clean_env)


def test_yaml_unknown_key_and_bad_value(tmp_path, clean_env):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nbase:\n  train: {epochs: 3}\nsearch_space:\n  model.width: [8, -4]\n")
    assert_clean_failure(run(["--config", str(cfg)], clean_env), "model.width must be >= 1, got -4", clean_env)
    cfg.write_text("name: x\nsearch_spcae: {}\n")
    assert_clean_failure(run(["--config", str(cfg)], clean_env), "unknown key 'search_spcae'", clean_env)


def test_missing_config_file(tmp_path, clean_env):
    assert_clean_failure(run(["--config", str(tmp_path / "nope.yaml")], clean_env), "does not exist", clean_env)
