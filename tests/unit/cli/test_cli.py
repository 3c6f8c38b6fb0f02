"""The face of the command line: help that answers at once (it imports none of the heavy packages) and says the
real defaults, the command list, the version, each sub-command's own arguments, and --print-config (every key and
the trials, no Ray)."""

import subprocess

import pytest
import yaml
from conftest import PY, ROOT, clean_environ, run_many

SCRIPTS = ["sweep_vicreg.py", "sweep_objectives.py", "supervised_baseline.py"]
ENGINES = {"torch", "ray", "mlflow"}
# what a help would have no need of: the engines and the numerical stack beneath them (numpy aside: `data --help`
# names the datasets, whose module imports it; alone it takes a few hundredths of a second)
HEAVY = ENGINES | {
    "torchvision",
    "ffcv",
    "pandas",
    "sklearn",
    "scipy",
    "matplotlib",
    "optuna",
    "sqlalchemy",
    "cv2",
    "PIL",
}


def run(args, env=None, timeout=120):
    """``args`` with ``-X importtime``: (process, the top-level packages it imported)."""
    proc = subprocess.run(
        [PY, "-X", "importtime", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )
    return proc, imported_packages(proc.stderr)


def imported_packages(stderr: str) -> set:
    """The top-level packages a ``-X importtime`` run imported."""
    return {ln.split("|")[-1].strip().split(".")[0] for ln in stderr.splitlines() if ln.startswith("import time:")}


HELPS = [[str(ROOT / "experiments" / s), "--help"] for s in SCRIPTS] + [
    ["-m", "ssl_ray.cli", "--help"],
    ["-m", "ssl_ray.cli"],
    ["-m", "ssl_ray.cli", "--version"],
    *[["-m", "ssl_ray.cli", c, "--help"] for c in ("sweep", "resume", "data", "probe", "report", "export")],
    ["-m", "ssl_ray.cli", "probe", "bank", "--help"],
]


@pytest.mark.parametrize("args", HELPS, ids=[" ".join(a[-2:]) for a in HELPS])
def test_help_answers_at_once_without_the_engines(args):
    proc, imported = run(args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not imported & HEAVY, f"--help imported {sorted(imported & HEAVY)}"


def test_command_list_and_version():
    import ssl_ray
    from ssl_ray.cli import COMMANDS

    proc, _ = run(["-m", "ssl_ray.cli"])
    lines = proc.stdout.splitlines()
    for name in COMMANDS:  # one line each, with what it does
        (line,) = [ln for ln in lines if ln.strip().startswith(name + " ")]
        assert len(line.split()) >= 4, line
    proc, _ = run(["-m", "ssl_ray.cli", "--version"])
    assert proc.stdout.strip() == f"ssl-ray {ssl_ray.__version__}"
    proc, _ = run(["-m", "ssl_ray.cli", "swep"])
    assert proc.returncode == 2 and "unknown command 'swep'" in proc.stderr


def test_sub_command_help_shows_its_own_arguments():
    out = run(["-m", "ssl_ray.cli", "resume", "--help"])[0].stdout
    assert "sweep_dir" in out and "--address" in out and "--num-cpus" in out
    assert "--epochs" not in out and "--set" not in out  # a resume cannot change the sweep
    out = run(["-m", "ssl_ray.cli", "probe", "--help"])[0].stdout
    assert "bank" in out and "--run-id" in out
    out = run(["-m", "ssl_ray.cli", "probe", "bank", "--help"])[0].stdout
    assert "--trial-dir" in out and "--out" in out and "--run-id" not in out


def test_launcher_help_says_what_it_sweeps_and_the_values_it_uses():
    out = run([str(ROOT / "experiments" / "sweep_vicreg.py"), "--help"])[0].stdout
    assert "Searches objective.lam over [10.0, 25.0]" in out and "model.width over [16, 32] (4 trials)" in out
    flat = " ".join(out.split())
    assert "--epochs EPOCHS training epochs per trial (default: 20)" in flat
    assert "--batch-size BATCH_SIZE per-worker batch size (default: 256)" in flat
    assert "(default: None)" not in flat
    # flags that cannot work with a recipe are not offered: it searches VICReg's own hyperparameters
    assert "--objective" not in out
    out = run([str(ROOT / "experiments" / "supervised_baseline.py"), "--help"])[0].stdout
    assert "--augment" not in out and "data.augment over ['digits', 'none'] (2 trials)" in out
    out = run([str(ROOT / "experiments" / "sweep_objectives.py"), "--help"])[0].stdout
    assert "--objective" not in out and "(10 trials)" in out


PRINTED = [("sweep_vicreg.py", 4), ("sweep_objectives.py", 10), ("supervised_baseline.py", 2)]


@pytest.fixture(scope="module")
def printed_configs(tmp_path_factory):
    """``<script> --print-config --epochs 3`` of each launcher, side by side, each with its own results folder:
    ``{script: (process, its results folder)}``."""
    folders = [tmp_path_factory.mktemp("print_config") for _ in PRINTED]
    procs = run_many(
        [
            [PY, "-X", "importtime", str(ROOT / "experiments" / script), "--print-config", "--epochs", "3"]
            for script, _ in PRINTED
        ],
        cwd=ROOT,
        envs=[clean_environ(f) for f in folders],
    )
    return {script: (proc, f / "results") for (script, _), proc, f in zip(PRINTED, procs, folders)}


@pytest.mark.parametrize("script, trials", PRINTED)
def test_print_config_prints_every_key_and_the_trials_and_starts_nothing(script, trials, printed_configs):
    from ssl_ray.config import ExperimentConfig, SweepConfig

    proc, results = printed_configs[script]
    imported = imported_packages(proc.stderr)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ray" not in imported and "mlflow" not in imported
    assert not results.exists()  # nothing written
    printed = yaml.safe_load(proc.stdout)
    assert len(printed["trials"]) == trials
    for section, keys in ExperimentConfig().to_dict().items():
        if section != "objective":
            assert set(printed["base"][section]) == set(keys), section
    assert printed["base"]["train"]["epochs"] == 3
    # what is printed is a sweep config: it reads back as the same sweep
    printed.pop("trials")
    again = SweepConfig.from_dict(printed)
    assert again.base.train.epochs == 3 and again.search_space == printed["search_space"]


def test_print_config_shows_a_bad_value_as_an_error(clean_env):
    proc, _ = run([str(ROOT / "experiments" / "sweep_vicreg.py"), "--print-config", "--epochs", "0"], env=clean_env)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == "error: train.epochs must be >= 1, got 0"
