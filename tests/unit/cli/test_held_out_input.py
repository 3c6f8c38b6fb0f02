"""Held-out reliability: inputs a careful user tried that used to give a traceback, a hang, a silent wrong
choice or a leaked secret. Each ends in one ``error:`` line and exit code 2 within seconds, before Ray
starts and before anything is written.

The launcher runs in this process (``sweep_main``, as ``experiments/sweep_vicreg.py`` calls it): the
subprocess cases of ``test_bad_input.py`` already show that the bad-input path imports neither ray nor
mlflow; here each case costs milliseconds, so every bound can have its case."""

import os
import subprocess
from pathlib import Path

import pytest
from conftest import PY, ROOT, run_many

RECIPE = str(ROOT / "configs" / "vicreg_digits.yaml")
SECRET = "hunter2"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("held_out")
    (d / "binary.yaml").write_bytes(b"\x00\xff\xfe\x89PNG binary")
    (d / "text.db").write_text("not a database\n")
    (d / "a_dir").mkdir()
    (d / "a_file").write_text("x")
    return d


CASES = [
    # names and paths are contained: a sweep name is one plain path component
    (["--name", "."], "sweep name must be 1-100 letters"),
    (["--name", ".."], "sweep name must be 1-100 letters"),
    (["--name", "/tmp/elsewhere"], "sweep name must be 1-100 letters"),
    (["--name", "a" * 101], "sweep name must be 1-100 letters"),
    # a name where a string is expected
    (["--set", "model.backbone=[res]"], "backbone name must be a string, got ['res']"),
    (["--set", "data.dataset=[digits]"], "dataset name must be a string, got ['digits']"),
    (["--set", "objective.name={a: 1}"], "objective name must be a string"),
    # binary files where text is expected
    (["--config", "{d}/binary.yaml"], "binary.yaml' is not UTF-8 text"),
    (["--set", "data.superclass_map={d}/binary.yaml"], "superclass map '{d}/binary.yaml' is not UTF-8 text"),
    (["--config", "{d}/a_dir"], "a_dir' does not exist or is not a file"),
    # tracking URIs and storage
    (["--mlflow-uri", "http://[::1"], "MLflow URI 'http://[::1' is malformed"),
    (["--mlflow-uri", "http://127.0.0.1:99999"], "is malformed"),
    (["--mlflow-uri", "http://"], "names no host"),
    (["--mlflow-uri", "sqlite:///{d}/text.db"], "text.db exists and is not an SQLite database"),
    (["--mlflow-uri", "sqlite:///{d}/a_dir"], "a_dir is a directory; name a .db file"),
    (
        ["--mlflow-uri", f"http://me:{SECRET}@127.0.0.1:9"],
        "MLflow tracking server http://me:***@127.0.0.1:9 is unreachable",
    ),
    # a database whose driver is not installed (psycopg 3 is: plain postgresql:// uses it), or that does not answer
    (
        ["--mlflow-uri", "postgresql+psycopg2://me@/mlflow"],
        "its driver postgresql+psycopg2 needs the Python package "
        "psycopg2-binary, which is not installed: .venv/bin/pip install psycopg2-binary (or use postgresql://",
    ),
    (
        ["--mlflow-uri", f"postgresql://me:{SECRET}@127.0.0.1:9/mlflow"],
        "MLflow URI 'postgresql://me:***@127.0.0.1:9/mlflow': PostgreSQL refused or did not answer",
    ),
    (["--storage-path", "{d}/a_file"], "a_file is not a writable directory"),
    # Ray addresses that answer nothing, found before anything is written
    (["--address", "127.0.0.1:9"], "no Ray cluster answers at"),
    (["--address", "ray://127.0.0.1:9"], "no Ray cluster answers at 127.0.0.1:9"),
    (["--address", "not an address"], "no Ray cluster found"),
    # upper bounds
    (["--search", "model.width=[100000]"], "model.width must be <= 8192"),
    (["--set", "model.depth=1000"], "model.depth must be <= 64"),
    (["--set", "model.projector_dims=[8,8,8,8,8,8,8,8,8]"], "model.projector_dims: at most 8 layers"),
    (["--views", "1000"], "data.views must be <= 64"),
    (["--set", "data.image_size=5000"], "data.image_size must be <= 1024"),
    (["--epochs", "100000"], "train.epochs must be <= 10000"),
    (["--set", "train.seed=99999999999"], "train.seed must be <= 2147483647"),
    (["--num-samples", "100000"], "num_samples must be <= 10000"),
    (["--seeds", "5000"], "the search space makes 20000 trials; at most 10000"),
    (["--workers", "100000"], "train.workers must be <= 4096"),
    (["--set", "optim.warmup_epochs=50"], "optim.warmup_epochs must be <= 20"),
    (["--set", "probe.mine_seeds=1000"], "probe.mine_seeds must be <= 100"),
    (["--set", "train.resume_every=50"], "train.resume_every must be <= 20"),
    # a sampler of real numbers over an integer key
    (["--search", "model.width={uniform: [4, 8]}"], "uniform samples real numbers but model.width is an integer"),
    (
        ["--search", "train.epochs={loguniform: [1, 8]}"],
        "loguniform samples real numbers but train.epochs is an integer",
    ),
    # a batch no worker's share of the data can fill: zero steps, formerly diagnosed as "collapsed"
    (
        ["--batch-size", "5000"],
        "optim.batch_size 5000 is larger than a worker's share of the training set (1437 images",
    ),
    (["--batch-size", "1000", "--workers", "2", "--num-cpus", "2"], "(1437 images / 2 worker(s) = 718)"),
    # probe tasks that could never start on this machine
    (["--set", "probe.num_cpus=64", "--num-cpus", "2"], "probe.num_cpus=64, but the local Ray instance has 2 CPUs"),
    # a flag given twice is not "last one wins"; an abbreviation is not a guess
    (["--epochs", "3", "--epochs", "4"], "--epochs is given twice"),
    (["--epochs=3", "--epochs", "4"], "--epochs is given twice"),
    (["--epoch", "3"], "unrecognized arguments: --epoch 3"),
    (["--set", "probe.layers=[block9]"], "probe.layers: 'block9' is not a layer of this model"),
]


def launch(args, tmp_path, capsys, monkeypatch):
    from ssl_ray.sweep.commands import sweep_main

    monkeypatch.setenv("SSL_RAY_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rc = sweep_main(args, config_file=RECIPE, prog="sweep_vicreg.py")
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[1][:50] for c in CASES])
def test_held_out_input_is_one_line(case, files, tmp_path, capsys, monkeypatch):
    args = [a.replace("{d}", str(files)) for a in CASES[case][0]]
    message = CASES[case][1].replace("{d}", str(files))
    before = sorted(files.rglob("*"))
    rc, out, err = launch(args, tmp_path, capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], lines[0]
    assert SECRET not in err and out == ""
    assert not (tmp_path / "results").exists() and sorted(files.rglob("*")) == before  # nothing written


def test_probe_gpus_on_a_machine_without_one(tmp_path, capsys, monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc, _, err = launch(["--set", "probe.num_gpus=1"], tmp_path, capsys, monkeypatch)
    assert rc == 2 and "probe.num_gpus=1, but this machine has no CUDA GPU" in err


def test_the_sweep_file_and_resume_mask_the_password(tmp_path, monkeypatch):
    """A password in the tracking URI (flag or environment) is never written: the sweep file and the command tag
    hold ``***``; resume takes the real URI from the environment. (--print-config against a live store that
    carries a password: tests/e2e/test_postgres.py, which starts PostgreSQL.)"""
    from ssl_ray.config import SweepConfig
    from ssl_ray.errors import ConfigError
    from ssl_ray.sweep.claim import settings_text
    from ssl_ray.sweep.commands import _unmasked
    from ssl_ray.uris import mask_uri

    uri = f"postgresql://me:{SECRET}@db.example:5432/mlflow"
    cfg = SweepConfig(mlflow_uri=uri)
    assert SECRET not in settings_text(cfg, tmp_path / "s") and "me:***@" in settings_text(cfg, tmp_path / "s")
    assert (
        mask_uri(f"python x.py --mlflow-uri {uri} --name y")
        == "python x.py --mlflow-uri postgresql://me:***@db.example:5432/mlflow --name y"
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ConfigError, match="set MLFLOW_TRACKING_URI"):
        _unmasked(mask_uri(uri))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert _unmasked(mask_uri(uri)) == uri


def test_a_sweep_file_cannot_name_a_path_for_the_report(tmp_path, clean_env):
    """``ssl-ray report`` reads the name from the sweep file; an absolute or dotted name is refused."""
    import yaml

    from ssl_ray.config import SWEEP_FILE, SweepConfig

    for name in ("/tmp/anywhere", "..", "."):
        sweep = tmp_path / f"s{len(name)}"
        sweep.mkdir()
        d = SweepConfig().to_dict()
        d["name"] = name
        (sweep / SWEEP_FILE).write_text(yaml.safe_dump(d))
        proc = subprocess.run(
            [PY, "-m", "ssl_ray.cli", "report", str(sweep)],
            capture_output=True,
            text=True,
            env=clean_env,
            timeout=60,
            cwd=ROOT,
        )
        assert proc.returncode == 2 and proc.stderr.startswith("error: sweep name must be"), proc.stderr
        assert not Path(clean_env["SSL_RAY_RESULTS"]).exists()


COMMANDS = [
    ["report", "vicreg_digits"],
    ["probe", "--run-id", "0123abcd"],
    ["export", "--run-id", "0123abcd", "--out", "x"],
]


def test_commands_against_a_server_that_is_down(tmp_path, clean_env):
    """No minutes of MLflow retries and no misleading "not found": one line, from ssl_ray's own check of the
    server, before MLflow is even imported (MLflow's client is what retries)."""
    procs = run_many(
        [
            [PY, "-X", "importtime", "-m", "ssl_ray.cli", *command, "--mlflow-uri", "http://127.0.0.1:9"]
            for command in COMMANDS
        ],
        env=clean_env,
        cwd=tmp_path,
    )
    for command, proc in zip(COMMANDS, procs):
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("import time:")]
        imported = {
            ln.split("|")[-1].strip().split(".")[0] for ln in proc.stderr.splitlines() if ln.startswith("import time:")
        }
        assert proc.returncode == 2 and len(lines) == 1, (command, proc.stderr[-2000:])
        assert "MLflow tracking server http://127.0.0.1:9 is unreachable" in lines[0]
        assert "mlflow" not in imported and "ray" not in imported, command


def test_write_beton_on_a_corrupt_image_exits_and_leaves_no_file(tmp_path, clean_env):
    """FFCV's writer used to print the error and never exit, leaving ``.partial``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
                    tmp_path / "imgs" / split / c / f"{i}.jpg"
                )
    # damaged past its header: the check before writing (every file opens as an image) passes it, the writer meets it
    bad = tmp_path / "imgs" / "train" / "b" / "3.jpg"
    bad.write_bytes(bad.read_bytes()[:-200])
    out = tmp_path / "out" / "train.beton"
    proc = subprocess.run(
        [
            PY,
            "-m",
            "ssl_ray.cli",
            "data",
            "write-beton",
            "--dataset",
            "imagefolder",
            "--data-root",
            str(tmp_path / "imgs"),
            "--split",
            "train",
            "--out",
            str(out),
            "--write-mode",
            "jpg",
            "--num-workers",
            "2",
        ],
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=120,
    )
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "train/b/3.jpg" in errors[0] and "cannot read image" in errors[0]
    assert list((tmp_path / "out").iterdir()) == []  # no .beton, no .partial, no error list


def test_a_trial_finished_by_a_resume_keeps_no_stop_reason(tmp_path):
    from ssl_ray.sweep.trial import record_end
    from ssl_ray.tracking import TAG_STATUS, TAG_STOP_REASON, TrialStatus, client, ensure_experiment

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    c = client(uri)
    exp = ensure_experiment(c, "x", uri)
    run = c.create_run(exp, tags={TAG_STATUS: TrialStatus.ERRORED.value, TAG_STOP_REASON: "RayTaskError: worker died"})
    assert record_end(c, run.info.run_id) == TrialStatus.FINISHED
    tags = c.get_run(run.info.run_id).data.tags
    assert tags[TAG_STATUS] == "finished" and TAG_STOP_REASON not in tags
    assert tags[TAG_STOP_REASON + ".earlier"] == "RayTaskError: worker died"
    diverged = c.create_run(exp, tags={TAG_STATUS: TrialStatus.DIVERGED.value, TAG_STOP_REASON: "non-finite loss"})
    assert record_end(c, diverged.info.run_id) == TrialStatus.DIVERGED
    assert c.get_run(diverged.info.run_id).data.tags[TAG_STOP_REASON] == "non-finite loss"


def test_resume_help_says_what_it_trusts(clean_env):
    proc = subprocess.run(
        [PY, "-m", "ssl_ray.cli", "resume", "--help"], capture_output=True, text=True, env=clean_env, timeout=60
    )
    assert proc.returncode == 0 and "--trust" in proc.stdout and "unpickles" in proc.stdout
    assert os.path.exists(ROOT / "ssl_ray" / "sweep" / "claim.py")
