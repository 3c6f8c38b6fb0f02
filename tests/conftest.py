import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

sys.path.insert(0, str(ROOT / "benchmarks"))
from servers import mlflow_server, postgres  # noqa: E402 - the servers the tests and the benchmarks start


def run_many(cmds, timeout: int = 120, envs=None, **kw) -> list:
    """Several commands started at once (each a fresh interpreter that spends most of its time importing):
    their ``CompletedProcess``es, in order. On 2 cores, four take about half the time of four in a row.
    ``envs``: one environment per command (else ``env`` in ``kw``, or this one's, for all)."""
    envs = envs or [kw.pop("env", None)] * len(cmds)
    kw.pop("env", None)
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, **kw)
        for c, e in zip(cmds, envs)
    ]
    done = []
    for cmd, p in zip(cmds, procs):
        out, err = p.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return done


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (Debian's ``postgresql`` package, which scripts/setup.sh installs):
    a fresh cluster in a temporary folder, on a Unix socket only, fsync off; ``.database(name)`` creates a
    database and returns its ``postgresql+psycopg://`` URI. Stopped and removed at the end of the session."""
    with postgres(fsync=False) as pg:
        yield pg


def pytest_configure(config):
    """Sweeps run by tests write their reports (results/<experiment>/) and default stores under a temporary
    results folder, never into the checkout's results/."""
    if "SSL_RAY_RESULTS" not in os.environ:
        import tempfile

        os.environ["SSL_RAY_RESULTS"] = str(Path(tempfile.mkdtemp(prefix="ssl_ray_test_results_")) / "results")
    config._ssl_ray_untracked = _untracked()


def _untracked() -> set[str] | None:
    """The checkout's untracked, not ignored files (None outside a git checkout)."""
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None
    return {ln[3:] for ln in proc.stdout.splitlines() if ln.startswith("?? ")}


def pytest_sessionfinish(session, exitstatus):
    """A test run must leave the checkout as it found it: a file a test wrote into the repository (an MLflow
    store's ``./mlruns`` beside the working directory, a report under results/) fails the run."""
    before = getattr(session.config, "_ssl_ray_untracked", None)
    after = _untracked() if before is not None else None
    if after is None:
        return
    new = sorted(after - before)
    if new:
        shown = "\n  ".join(new[:20])
        print(f"\n[conftest] the tests wrote {len(new)} file(s) into the checkout:\n  {shown}", file=sys.stderr)
        if session.exitstatus == 0:
            session.exitstatus = 1


@pytest.fixture
def mlflow_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def clean_environ(folder: Path) -> dict:
    """Environment for subprocesses: no inherited tracking URI, results under ``folder``."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["SSL_RAY_RESULTS"] = str(folder / "results")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def clean_env(tmp_path):
    return clean_environ(tmp_path)


# Sweeps that test training, not the probe suite, probe lightly: NCC/CDNV on class and random labels.
LIGHT_PROBES = ["--set", "probe.metrics=[ncc,cdnv]", "--set", "probe.targets=[class,permuted_1.0]"]


def one_trial_sweep_cmd(tmp: Path, name: str, epochs: int = 6) -> list:
    """The command of a one-trial sweep (RES-1-4, lambda 25, light probes, no report) on 2 CPUs whose sweeps and
    SQLite store live in ``tmp``: what the signal, exit-code and concurrency tests start and stop."""
    return [
        PY,
        str(ROOT / "experiments" / "sweep_vicreg.py"),
        "--name",
        name,
        "--epochs",
        str(epochs),
        "--set",
        "model.depth=1",
        "--search",
        "model.width=[4]",
        "--search",
        "objective.lam=[25]",
        "--num-cpus",
        "2",
        "--storage-path",
        str(tmp / "sweeps"),
        "--mlflow-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--no-report",
        *LIGHT_PROBES,
    ]


class SweepRun:
    """A sweep script run to the end in its own process, and what it left in MLflow."""

    def __init__(self, proc, uri: str, name: str, sweep_dir: Path):
        from ssl_ray.tracking import TAG_KIND, child_runs, client

        self.proc, self.uri, self.name, self.sweep_dir = proc, uri, name, sweep_dir
        self.client = client(uri)
        exp = self.client.get_experiment_by_name(name)
        runs = self.client.search_runs([exp.experiment_id]) if exp is not None else []
        parents = [r for r in runs if r.data.tags.get(TAG_KIND) == "sweep"]
        self.parent = parents[0] if parents else None
        self.trials = child_runs(self.client, self.parent.info.run_id) if self.parent else []


def run_sweep_script(
    script: str, name: str, tmp: Path, *args: str, env=None, timeout: int = 900, cwd=None, expect_rc: int = 0, uri=None
) -> SweepRun:
    """``python experiments/<script> --name <name> <args>`` with its sweeps and MLflow store under ``tmp``
    (``--num-cpus 2``); asserts its exit code and returns the sweep read back from MLflow."""
    import subprocess

    uri = uri or f"sqlite:///{tmp / 'mlflow.db'}"
    cmd = [
        PY,
        str(ROOT / "experiments" / script),
        "--name",
        name,
        *args,
        "--storage-path",
        str(tmp / "sweeps"),
        "--mlflow-uri",
        uri,
        "--num-cpus",
        "2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env=env)
    assert proc.returncode == expect_rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    return SweepRun(proc, uri, name, tmp / "sweeps" / name)


# -- the tiny sweep that several end-to-end tests read ------------------------------------------------------

PROBE_RETRIES = 2


@pytest.fixture(scope="session")
def tiny_http(tmp_path_factory):
    """One tiny sweep (2 trials x 2 epochs, every probe family, the target bank it trains itself) logging over
    HTTP to a real ``mlflow server`` on 127.0.0.1, shared by the integration and report tests: one sweep
    answers both (each sweep costs about 10 Ray worker processes' start-up per trial on 2 cores).

    Faults are injected into the probe fan-out's Ray workers (``SSL_RAY_FAULTS``): one score task fails on its
    first attempt (the retry must fill the gap), and the features of epoch 2 fail on every attempt in both
    trials (the sweep must finish anyway, record the failure, and ``ssl-ray probe`` must fill it later).

    Yields ``(tmp, base_url, proc, env)``; the server stops at the end of the session."""
    import json

    from ssl_ray.faults import fired

    tmp = tmp_path_factory.mktemp("tiny_http")
    with mlflow_server(tmp) as base:
        faults = tmp / "faults.json"
        faults.write_text(
            json.dumps(
                [
                    {"site": "probe.score", "match": {"epoch": 1, "layer": "block1"}, "times": 1},
                    {"site": "probe.features", "match": {"epoch": 2}, "times": 2 * (PROBE_RETRIES + 1)},
                ]
            )
        )
        env = dict(os.environ, SSL_RAY_RESULTS=str(tmp / "results"), PYTHONUNBUFFERED="1", SSL_RAY_FAULTS=str(faults))
        env.pop("MLFLOW_TRACKING_URI", None)
        run = run_sweep_script(
            "sweep_vicreg.py",
            "tiny",
            tmp,
            "--epochs",
            "2",
            "--set",
            "model.depth=2",
            "--search",
            "model.width=[8]",
            "--search",
            "objective.lam=[10,25]",
            "--search",
            "objective.mu=[25]",
            "--search",
            "objective.nu=[1]",
            "--set",
            f"probe.max_retries={PROBE_RETRIES}",
            "--set",
            "probe.sample_images=10",
            "--set",
            "probe.sample_train_views=10",
            "--set",
            "probe.sample_test_views=4",
            # every probe family, MINE at 2 seeds x 50 steps (its accuracy is tested in tests/unit/probes)
            "--set",
            "probe.mine_seeds=2",
            "--set",
            "probe.mine_steps=50",
            # a bank classifier of 16 epochs, not 20: 17 targets, largest randomness gap 0.24 with the bank's own seed
            # stream (the limit is 0.25; 14 epochs reached 0.25, 12 were refused at 0.27), about 8 s less
            "--set",
            "probe.bank_epochs=16",
            env=env,
            uri=base,
            expect_rc=1,
        )  # the truth: epoch 2's probes gave up in both trials (until `ssl-ray probe` fills them)
        assert fired(faults) == 1 + 2 * (PROBE_RETRIES + 1)
        yield tmp, base, run.proc, {k: v for k, v in env.items() if k != "SSL_RAY_FAULTS"}


RESULTS_LOAD = """
import json, sys, time
t0 = time.perf_counter()
from mlflow.tracking import MlflowClient
asked, real = [], MlflowClient.get_metric_history
def spy(self, run_id, key):
    asked.append(key)
    return real(self, run_id, key)
MlflowClient.get_metric_history = spy
from ssl_ray import results
r = results.load(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t0, "torch": "torch" in sys.modules, "asked": asked,
                  "trials": len(r.trials), "probes": len(r.probes),
                  "best_layers": bool(r.trials.best_layer.notna().all())}))
"""


def results_load_in_a_fresh_process(sweep_dir, **kw) -> dict:
    """``ssl_ray.results.load(sweep_dir)`` in a fresh interpreter, as a notebook calls it: ``torch`` (whether it was
    imported), ``asked`` (the metric histories requested from MLflow, one request each: a trial's probes should
    come from its probes.csv, one request for all), ``trials``, ``probes`` (rows), ``best_layers`` (every trial has
    one), and ``seconds``, to print."""
    import json

    done = subprocess.run([PY, "-c", RESULTS_LOAD, str(sweep_dir)], capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe_table_steps(client, run_id: str) -> dict:
    """``{probe key: sorted epochs}`` of a trial run's ``probes/probes.csv``: every probe value (its MLflow run holds
    a curated few, ``ssl_ray.probes.curated``)."""
    from ssl_ray.probes.table import read_probe_table

    t = read_probe_table(client, run_id)
    assert t is not None, f"run {run_id} has no probes/probes.csv"
    out: dict = {}
    for key, epoch in zip("probe/" + t.target + "/" + t.metric + "/" + t.layer, t.epoch):
        out.setdefault(key, []).append(int(epoch))
    return {k: sorted(v) for k, v in out.items()}


# -- unit tests start no Ray, no sweep and no server --------------------------------------------------------
# A test under tests/unit/ that starts Ray (ray.init, a Cluster, a Tuner), a sweep in a subprocess (which starts
# Ray there) or a server (PostgreSQL, mlflow server) fails: such a test belongs in tests/e2e/, or is marked slow.
# Ray is caught two ways, neither of which anything but a Ray start can trigger: this process's Ray turning
# initialized, and a new Ray session folder under RAY_TMPDIR, which each unit test (and every process it starts)
# gets pointed at a folder of this run's own.

UNIT = ROOT / "tests" / "unit"
SERVER_FIXTURES = {"postgres_server", "tiny_http"}  # fixtures that start a server (tiny_http: and a whole sweep)
_RAY_TMP: list = []


def _held_to_unit_rules(item) -> bool:
    return UNIT in Path(item.path).parents and not any(item.get_closest_marker(m) for m in ("slow", "bench"))


def _ray_initialized() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _ray_sessions() -> set:
    """The Ray sessions started under this run's RAY_TMPDIR (``<dir>/ray/session_<time>_<pid>``)."""
    if not _RAY_TMP:
        return set()
    return {p.name for p in (Path(_RAY_TMP[0]) / "ray").glob("session_*") if p.name != "session_latest"}


def _refuse_ray(item, before: tuple, phase: str) -> None:
    here = not before[0] and _ray_initialized()
    sessions = _ray_sessions() - before[1]
    if not (here or sessions):
        return
    if here:
        sys.modules["ray"].shutdown()  # leave no Ray to the tests that follow
    how = "in this process" if here else f"in a process it started ({', '.join(sorted(sessions))})"
    pytest.fail(
        f"{item.nodeid}: a unit test started Ray {how} during its {phase}; a test that starts Ray, a sweep "
        f"or a server belongs in tests/e2e/ (or is marked slow)",
        pytrace=False,
    )


def _unit_phase(phase: str):
    @pytest.hookimpl(wrapper=True)
    def hook(item):
        if not _held_to_unit_rules(item):
            return (yield)
        if phase == "setup":
            servers = sorted(SERVER_FIXTURES & set(item.fixturenames))
            if servers:
                pytest.fail(
                    f"{item.nodeid}: a unit test uses {', '.join(servers)}, which starts a server; it belongs "
                    f"in tests/e2e/ (or is marked slow)",
                    pytrace=False,
                )
            if not _RAY_TMP:
                import tempfile

                _RAY_TMP.append(tempfile.mkdtemp(prefix="srt"))  # short: Ray's socket paths live under it
            item._ssl_ray_tmpdir = (os.environ.get("RAY_TMPDIR"),)  # restored after its teardown
            os.environ["RAY_TMPDIR"] = _RAY_TMP[0]
        before = (_ray_initialized(), _ray_sessions())
        try:
            result = yield
            _refuse_ray(item, before, phase)
            return result
        finally:
            if phase == "teardown" and hasattr(item, "_ssl_ray_tmpdir"):
                (old,) = item._ssl_ray_tmpdir
                if old is None:
                    os.environ.pop("RAY_TMPDIR", None)
                else:
                    os.environ["RAY_TMPDIR"] = old

    return hook


pytest_runtest_setup = _unit_phase("setup")
pytest_runtest_call = _unit_phase("call")
pytest_runtest_teardown = _unit_phase("teardown")


def pytest_unconfigure(config):
    if _RAY_TMP:
        import shutil

        shutil.rmtree(_RAY_TMP[0], ignore_errors=True)


@pytest.fixture
def fake_autoscaling_cluster():
    """``cluster-local.yaml`` started as its comment says (Ray's fake multi-node provider: the autoscaler adds
    worker nodes on this machine); yields the autoscaler's log; every fake node is stopped afterwards."""
    ray, env = str(Path(PY).parent / "ray"), dict(os.environ, RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
    subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
    start = subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--num-cpus=0",
            f"--autoscaling-config={ROOT / 'cluster-local.yaml'}",
            "--dashboard-host=127.0.0.1",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
    try:
        yield Path("/tmp/ray/session_latest/logs/monitor.log")
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=300)
