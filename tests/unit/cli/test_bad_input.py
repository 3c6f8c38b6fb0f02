"""Bad input gets a one-line error naming the bad value and exit code 2, before Ray starts.

Each case runs the launcher's entry point (``sweep_main``, as ``experiments/sweep_vicreg.py`` calls it) in
this process, with its own results directory: nothing may be written there. ``test_bad_input_imports_no_ray``
runs a sample of the cases as real scripts in subprocesses and checks, with ``-X importtime``, that the
bad-input path never imports ray or mlflow."""

import os
import subprocess

import pytest
from conftest import PY, ROOT, clean_environ, run_many

SCRIPT = str(ROOT / "experiments" / "sweep_vicreg.py")

CASES = [
    (["--set", "objective.name=simclrr"], "unknown objective 'simclrr'"),
    # this recipe searches VICReg's own hyperparameters: it does not offer --objective
    (["--objective", "simclr"], "unrecognized arguments: --objective simclr"),
    (["--backbone", "vit_huge"], "unknown backbone 'vit_huge'"),
    (["--search", "model.width=[0]"], "model.width must be >= 1, got 0"),
    (["--set", "model.depth=-2"], "model.depth must be >= 1, got -2"),
    (["--search", "model.width=[16,0]"], "model.width must be >= 1, got 0"),
    (["--search", "objective.lam=[-1]"], "objective.lam must be >= 0 for vicreg, got -1"),
    (["--search", "objective.mu=[-5]"], "objective.mu must be >= 0 for vicreg, got -5"),
    (["--search", "objective.nu=[-0.5]"], "objective.nu must be >= 0 for vicreg, got -0.5"),
    (["--set", "objective.gamma=0"], "objective.gamma must be > 0 for vicreg, got 0"),
    (
        ["--set", "objective.lam=5"],
        "objective.lam is searched over [10.0, 25.0], so --set objective.lam would be ignored",
    ),
    (["--batch-size", "1"], "optim.batch_size must be >= 2, got 1"),
    (["--epochs", "0"], "train.epochs must be >= 1, got 0"),
    (["--set", "objective.temperature=0.1"], "unknown hyperparameter objective.temperature"),
    (["--set", "model.widht=3"], "unknown key model.widht"),
    (["--epochs", "three"], "argument --epochs: invalid int value: 'three'"),
    (["--workers", "3", "--num-cpus", "2"], "a trial needs 2.86 CPUs (train.workers 3 x train.cpus_per_worker 0.95"),
    (
        ["--set", "probe.metrics=[ncc,knn]"],
        "unknown probe 'knn' (known: cdnv, geometry, information, linear, mine, ncc)",
    ),
    (["--set", "probe.targets=[class,random_1.5]"], "unknown probe target 'random_1.5'"),
    (
        ["--set", "data.superclass_map=null", "--set", "probe.targets=[superclass]"],
        "probe target 'superclass': dataset 'digits' has no superclass labels (give data.superclass_map)",
    ),
    (
        ["--set", "data.superclass_map=/nonexistent/map.txt"],
        "superclass map '/nonexistent/map.txt' does not exist or is not a file",
    ),
    (["--set", "probe.targets=[class,permuted_x]"], "unknown probe target 'permuted_x'"),
    (["--set", "probe.target_bank=/nonexistent/bank.npz"], "target bank /nonexistent/bank.npz: no such file"),
    (["--search", "data.dataset=[digits,cifar10]"], "data.dataset is searched, but a sweep builds one target bank"),
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--set", "probe.val_fraction=0.6"], "probe.val_fraction must be < 0.5"),
    (["--set", "probe.sample_images=1"], "probe.sample_images must be >= 2, got 1"),
    (["--set", "probe.num_gpus=-1"], "probe.num_gpus must be >= 0.0, got -1"),
    (
        ["--set", "probe.layers=[block1,layer4]"],
        "probe.layers: 'layer4' is not a layer of this model (its layers: block1,",
    ),
    # search algorithms, schedulers and the metric they read (ssl_ray.sweep.checks.check_search)
    (
        ["--scheduler", "asha", "--scheduler-metric", "train_loss"],
        "ASHA scheduler on train_loss while objective.lam is searched: losses of different objectives or coefficients",
    ),
    (
        ["--scheduler", "pbt", "--scheduler-metric", "train_loss"],
        "PBT scheduler on train_loss while objective.lam is searched",
    ),
    (
        ["--search-alg", "bohb", "--scheduler-metric", "train_loss"],
        "bohb search on train_loss while objective.lam is searched",
    ),
    (["--search-alg", "optuna"], "search_alg optuna samples every key, but search_space.objective.lam is a grid list"),
    (["--search-alg", "bohb"], "search_alg bohb samples every key, but search_space.objective.lam is a grid list"),
    (["--search-alg", "hyperopt"], "unknown search_alg 'hyperopt' (known: grid, random, optuna, bohb)"),
    (
        ["--scheduler-metric", "online/knn_test"],
        "scheduler_metric 'online/knn_test': nothing reports it; known: train_loss,",
    ),
    (
        ["--scheduler", "asha", "--set", "train.online_every=0"],
        "scheduler_metric online/knn_val: nothing reports it, train.online_every is 0",
    ),
    (
        ["--scheduler", "asha", "--set", "train.online_every=2"],
        "but train.online_every is 2; set train.online_every: 1",
    ),
    (["--scheduler", "pbt"], "scheduler pbt perturbs optim.lr and objective coefficients, but none is searched on a"),
    (
        ["--scheduler", "pbt", "--search", "optim.lr={loguniform: [0.0001, 0.01]}", "--search-alg", "optuna"],
        "scheduler pbt evolves its own population; use search_alg random, not optuna",
    ),
    (
        ["--search", "objective.lam={loguniform: [1, 100], when: {objective.name: vicreg}}"],
        "search_space.objective.lam.when: 'objective.name' is not a searched key without a when of its own",
    ),
    (
        [
            "--search",
            "objective.name=[vicreg]",
            "--search",
            "objective.lam={loguniform: [1, 100], when: {objective.lam: 2}}",
        ],
        "search_space.objective.lam.when: 'objective.lam' is not a searched key without a when of its own",
    ),
    (["--set", "train.online_every=-1"], "train.online_every must be >= 0, got -1"),
]


def run(args, env):
    """The launcher in this process, under ``env`` (its SSL_RAY_RESULTS and MLFLOW_TRACKING_URI); a
    CompletedProcess of what it printed."""
    import contextlib
    import io

    from ssl_ray.sweep.commands import sweep_main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in ("SSL_RAY_RESULTS", "MLFLOW_TRACKING_URI")}
    try:
        for k in saved:
            if k in env:
                os.environ[k] = env[k]
            else:
                os.environ.pop(k, None)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = sweep_main(
                list(args), config_file=str(ROOT / "configs" / "vicreg_digits.yaml"), prog="sweep_vicreg.py"
            )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


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


@pytest.fixture(scope="module")
def flag_runs(tmp_path_factory):
    """Every CASES command, each with its own results directory."""
    base = dict(os.environ, PYTHONUNBUFFERED="1")
    base.pop("MLFLOW_TRACKING_URI", None)
    envs = [dict(base, SSL_RAY_RESULTS=str(tmp_path_factory.mktemp("flag") / "results")) for _ in CASES]
    procs = [run(args, env) for (args, _), env in zip(CASES, envs)]
    return {i: (proc, env) for i, (proc, env) in enumerate(zip(procs, envs))}


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[1][:40] for c in CASES])
def test_bad_flag(case, flag_runs):
    proc, env = flag_runs[case]
    assert_clean_failure(proc, CASES[case][1], env)


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


# ------------------------------------------------------------------------------------------------
# Data: each error names the file and the problem


@pytest.fixture(scope="module")
def betons(tmp_path_factory):
    """A good .beton, a truncated copy, one with a corrupt header, and one without an image field."""
    import numpy as np
    from ffcv.fields import IntField
    from ffcv.writer import DatasetWriter

    from ssl_ray.data import load_dataset
    from ssl_ray.data.beton import write_beton

    d = tmp_path_factory.mktemp("betons")
    good = write_beton(load_dataset("digits", "test", image_size=16), d / "good.beton", write_mode="raw", num_workers=1)
    data = good.read_bytes()
    (d / "truncated.beton").write_bytes(data[: len(data) // 2])
    (d / "corrupt.beton").write_bytes(b"\x07\x00" + data[2:])  # format version 7
    (d / "garbage.beton").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())

    class Labels:
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return (i % 3,)

    DatasetWriter(str(d / "labels_only.beton"), {"label": IntField()}, num_workers=1).from_indexed_dataset(Labels())
    return d


DATA_CASES = [
    (lambda d: ["--dataset", "cifar100"], "dataset 'cifar100' needs data.data_root"),
    (lambda d: ["--dataset", "cifar10", "--data-root", str(d / "no_such_dir")], "no_such_dir: no such directory"),
    (lambda d: ["--dataset", "cifar100", "--data-root", str(d)], "missing cifar-100-python/train"),
    (
        lambda d: ["--dataset", "imagenet", "--data-root", str(d)],
        "missing train/ (expected <root>/<split>/<class>/<image>)",
    ),
    (lambda d: ["--beton", str(d / "nope.beton")], "nope.beton: no such .beton file"),
    (lambda d: ["--beton", str(d / "truncated.beton")], "truncated.beton: truncated"),
    (lambda d: ["--beton", str(d / "corrupt.beton")], "corrupt.beton: not an FFCV .beton (format version 7"),
    (lambda d: ["--beton", str(d / "garbage.beton")], "garbage.beton: not an FFCV .beton"),
    (
        lambda d: ["--beton", str(d / "labels_only.beton")],
        "labels_only.beton: has fields ['label'] but no 'image' field",
    ),
    (lambda d: ["--augment", "autoaugment"], "unknown augmentation protocol 'autoaugment'"),
    (lambda d: ["--set", "data.loader=ffcv"], "data.loader 'ffcv' needs data.beton"),
    (lambda d: ["--dataset", "imagefolder", "--data-root", str(d / "folder"), "--set", "data.loader=memory"], None),
]


@pytest.fixture(scope="module")
def data_runs(betons, tmp_path_factory):
    """Every DATA_CASES command, each with its own results directory."""
    for split in ("train", "test"):  # an image folder, which cannot use the in-memory loader
        (betons / "folder" / split / "cls").mkdir(parents=True, exist_ok=True)
    base = dict(os.environ, PYTHONUNBUFFERED="1")
    base.pop("MLFLOW_TRACKING_URI", None)
    envs = [dict(base, SSL_RAY_RESULTS=str(tmp_path_factory.mktemp("data") / "results")) for _ in DATA_CASES]
    procs = [run(make(betons), env) for (make, _), env in zip(DATA_CASES, envs)]
    return list(zip(procs, envs))


@pytest.mark.parametrize(
    "case", range(len(DATA_CASES)), ids=[c[1][:40] if c[1] else "memory-loader-folder" for c in DATA_CASES]
)
def test_bad_data_input(case, data_runs):
    message = DATA_CASES[case][1] or "data.loader 'memory' needs an in-memory dataset"
    proc, env = data_runs[case]
    assert_clean_failure(proc, message, env)


def test_write_beton_errors_name_the_problem(betons, tmp_path, clean_env):
    cli = [PY, "-m", "ssl_ray.cli", "data"]
    cases = [
        (
            ["write-beton", "--dataset", "cifar10", "--split", "train", "--out", str(tmp_path / "x.beton")],
            "needs data.data_root",
        ),
        (
            ["write-beton", "--dataset", "digits", "--split", "val", "--out", str(tmp_path / "x.beton")],
            "invalid choice: 'val'",
        ),
        (
            [
                "write-beton",
                "--dataset",
                "digits",
                "--split",
                "train",
                "--out",
                str(tmp_path / "x.beton"),
                "--jpeg-quality",
                "0",
            ],
            "jpeg quality must be in 1..100",
        ),
        (["inspect", str(betons / "truncated.beton")], "truncated.beton: truncated"),
    ]
    procs = run_many([cli + args for args, _ in cases], env=clean_env, cwd=ROOT)
    for (_, message), proc in zip(cases, procs):
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not (tmp_path / "x.beton").exists()


def test_probe_command_errors_name_the_problem(tmp_path, clean_env):
    cli = [PY, "-m", "ssl_ray.cli", "probe"]
    (tmp_path / "empty").mkdir()
    cases = [
        ([], "one of the arguments --run-id --trial-dir is required"),
        (["--trial-dir", str(tmp_path / "nope")], "nope: no such directory"),
        (["--trial-dir", str(tmp_path / "empty")], "empty: no checkpoints (state.pt) under it"),
        (["bank", "--trial-dir", str(tmp_path / "empty")], "--out"),
    ]
    procs = run_many([cli + args for args, _ in cases], env=clean_env, cwd=ROOT)
    for (_, message), proc in zip(cases, procs):
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not __import__("pathlib").Path(clean_env["SSL_RAY_RESULTS"]).exists()  # no store was created


def test_commands_outside_the_repository_create_no_store(tmp_path, clean_env):
    """Run in a directory with no results/: a command that reads a store says where it looked, in one line, and
    creates nothing there (MLflow would have made an empty ./results/mlflow.db, then said "run not found")."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in clean_env.items() if k not in ("SSL_RAY_RESULTS", "MLFLOW_TRACKING_URI")}
    cli = [PY, "-m", "ssl_ray.cli"]
    cases = [
        cli + ["export", "--run-id", "0123abcd", "--out", "net"],
        cli + ["probe", "--run-id", "0123abcd"],
        cli + ["report", "vicreg_digits"],
    ]
    for proc in run_many(cases, env=env, cwd=elsewhere):
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
        assert f"no MLflow store at {elsewhere / 'results' / 'mlflow.db'}" in lines[0], lines
    assert list(elsewhere.iterdir()) == []  # no results/, no mlflow.db, no net/


# ------------------------------------------------------------------------------------------------
# Resume, tracking and checkpoints: wrong paths and settings fail before anything runs or is written


@pytest.fixture(scope="module")
def failure_inputs(tmp_path_factory):
    """A folder that is not a sweep, a folder shaped like one, and a checkpoint of a width-8 backbone."""
    import yaml

    from ssl_ray.config import SWEEP_FILE, ExperimentConfig, SweepConfig
    from ssl_ray.models.build import model_from_config
    from ssl_ray.train.optim import build_optimizer, build_scheduler
    from ssl_ray.train.state import save_state
    from ssl_ray.validation import validate_experiment

    d = tmp_path_factory.mktemp("failure_inputs")
    (d / "not_a_sweep").mkdir()
    (d / "not_a_sweep" / "notes.txt").write_text("hello")
    sweep = d / "sweeps" / "vicreg_digits"
    sweep.mkdir(parents=True)
    (sweep / SWEEP_FILE).write_text(yaml.safe_dump(SweepConfig().to_dict()))
    (sweep / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    cfg = validate_experiment(ExperimentConfig.from_dict({"model": {"width": 8, "depth": 2}}))
    model = model_from_config(cfg)
    opt = build_optimizer(model.parameters(), cfg.optim, 1)
    (d / "w8").mkdir()
    save_state(
        str(d / "w8"),
        model=model,
        optimizer=opt,
        scheduler=build_scheduler(opt, 0, 10),
        epoch=3,
        cfg=cfg.to_dict(),
        mlflow_run_id=None,
    )
    (d / "broken").mkdir()
    (d / "broken" / "state.pt").write_bytes((d / "w8" / "state.pt").read_bytes()[:1000])
    return d


FAILURE_CASES = [
    (lambda d: ["--resume", str(d / "no_such_sweep")], "no_such_sweep: no such directory"),
    (lambda d: ["--resume", str(d / "not_a_sweep")], "not_a_sweep: not a sweep directory"),
    (
        lambda d: ["--resume", str(d / "sweeps" / "vicreg_digits"), "--epochs", "3"],
        "--epochs cannot change them (start a new sweep with another --name instead)",
    ),
    (lambda d: ["--mlflow-uri", "http://127.0.0.1:1"], "MLflow tracking server http://127.0.0.1:1 is unreachable"),
    (
        lambda d: ["--mlflow-uri", "./mlruns"],
        "MLflow URI './mlruns': MLflow 3 stores runs in a database or on a server",
    ),
    (
        lambda d: ["--mlflow-uri", f"sqlite:///{d / 'w8' / 'state.pt' / 'mlflow.db'}"],
        "state.pt is not a writable directory",
    ),
    (
        lambda d: [
            "--set",
            f"train.init_checkpoint={d / 'w8'}",
            "--set",
            "model.depth=2",
            "--search",
            "model.width=[32]",
        ],
        "holds a different model: model.width 8 there, 32 here",
    ),
    (lambda d: ["--set", f"train.init_checkpoint={d / 'nope'}"], "no such checkpoint (a state.pt or its directory)"),
    (lambda d: ["--set", f"train.init_checkpoint={d / 'broken'}"], "broken/state.pt: cannot be read"),
    (lambda d: ["--scheduler", "hyperband"], "unknown scheduler 'hyperband' (known: fifo, asha, pbt)"),
    (lambda d: ["--set", "train.collapse_std=-1"], "train.collapse_std must be >= 0.0, got -1"),
    (lambda d: ["--set", "train.resume_every=-1"], "train.resume_every must be >= 0, got -1"),
    (lambda d: ["--gpus-per-worker", "1"], "this machine has no CUDA GPU"),
]


@pytest.fixture(scope="module")
def failure_runs(failure_inputs, tmp_path_factory):
    base = dict(os.environ, PYTHONUNBUFFERED="1")
    base.pop("MLFLOW_TRACKING_URI", None)
    envs = [dict(base, SSL_RAY_RESULTS=str(tmp_path_factory.mktemp("fail") / "results")) for _ in FAILURE_CASES]
    before = sorted(str(p) for p in failure_inputs.rglob("*"))
    procs = [run(make(failure_inputs), env) for (make, _), env in zip(FAILURE_CASES, envs)]
    assert sorted(str(p) for p in failure_inputs.rglob("*")) == before  # nothing written into the sweep folders
    return {i: (proc, env) for i, (proc, env) in enumerate(zip(procs, envs))}


@pytest.mark.parametrize("case", range(len(FAILURE_CASES)), ids=[c[1][:40] for c in FAILURE_CASES])
def test_bad_failure_input(case, failure_runs):
    import torch

    if FAILURE_CASES[case][1] == "this machine has no CUDA GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc, env = failure_runs[case]
    assert_clean_failure(proc, FAILURE_CASES[case][1], env)


def test_resume_command_needs_a_sweep_directory(clean_env):
    proc = subprocess.run(
        [PY, "-m", "ssl_ray.cli", "resume"], capture_output=True, text=True, env=clean_env, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "the following arguments are required: sweep_dir" in lines[0]
    ), lines


SCRIPT_CASES = [
    ["--set", "objective.name=simclrr"],
    ["--search", "model.width=[16,0]"],
    ["--dataset", "cifar10", "--data-root", "/no/such/dir"],
    ["--epochs", "three"],
]


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory):
    """The cases of ``test_bad_input_imports_no_ray``, each a real script, run side by side (each in its own
    results folder); ``{case: (process, env)}``."""
    envs = [clean_environ(tmp_path_factory.mktemp("script")) for _ in SCRIPT_CASES]
    procs = run_many(
        [[PY, "-X", "importtime", SCRIPT, *args] for args in SCRIPT_CASES], timeout=120, cwd=ROOT, envs=envs
    )
    return {" ".join(args): (proc, env) for args, proc, env in zip(SCRIPT_CASES, procs, envs)}


@pytest.mark.parametrize("args", SCRIPT_CASES)
def test_bad_input_imports_no_ray(args, script_runs):
    """The real script, as a user runs it: one line, exit 2, and neither ray nor mlflow imported."""
    proc, env = script_runs[" ".join(args)]
    assert_clean_failure(proc, "", env)
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    # validation ran (it asks the registries), except where the config's own parsing refused the value first: a bad
    # flag, or an objective with no typed hyperparameters (ssl_ray/config/hparams.py)
    assert "torch" in imported or args in (["--epochs", "three"], ["--set", "objective.name=simclrr"])
