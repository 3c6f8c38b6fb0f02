"""Concurrent and repeated sweeps never mix: one directory, one settings file and one MLflow parent run per
sweep. Two started at once under one name: one is refused in one line before Ray starts, naming
``--resume`` and ``--name``. A second sweep under a finished one's name: refused with ``--name``; under the
recipe's own name it moves on to ``<name>-2`` (``test_default_sweep`` runs that one). ``resume`` continues
only a sweep this user started (its settings signed with the user's key)."""

import os
import signal
import subprocess
import time

import pytest
import yaml
from conftest import PY, ROOT, one_trial_sweep_cmd


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)


def test_two_sweeps_started_at_once_under_one_name(tmp_path, clean_env):
    procs = {
        epochs: subprocess.Popen(
            one_trial_sweep_cmd(tmp_path, "same", epochs),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env,
            cwd=ROOT,
        )
        for epochs in (1, 2)
    }
    try:
        deadline = time.time() + 120
        while all(p.poll() is None for p in procs.values()):
            assert time.time() < deadline, "neither sweep was refused"
            time.sleep(0.2)
        loser_epochs = next(e for e, p in procs.items() if p.poll() is not None)
        winner_epochs = 3 - loser_epochs
        loser = procs[loser_epochs]
        err = loser.stderr.read()
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert loser.returncode == 2 and len(lines) == 1, err[-2000:]
        assert (
            lines[0].startswith("error: a sweep named 'same' already exists")
            and "resume" in lines[0]
            and "--name" in lines[0]
        )
        settings = yaml.safe_load((tmp_path / "sweeps" / "same" / "ssl_ray_sweep.yaml").read_text())
        assert settings["base"]["train"]["epochs"] == winner_epochs  # the winner's settings, never overwritten
        assert procs[winner_epochs].poll() is None  # the winner goes on
    finally:
        for p in procs.values():
            stop(p)


def test_a_second_sweep_under_a_finished_ones_name_is_refused(tmp_path, clean_env):
    from ssl_ray.config import SweepConfig
    from ssl_ray.sweep.claim import claim

    first = claim(SweepConfig(name="done", storage_path=str(tmp_path / "sweeps")))
    before = (first / "ssl_ray_sweep.yaml").read_bytes()
    ray_tmp = tmp_path / "ray_tmp"  # where a Ray the command started would keep its session
    proc = subprocess.run(
        one_trial_sweep_cmd(tmp_path, "done", 1),
        capture_output=True,
        text=True,
        env=dict(clean_env, RAY_TMPDIR=str(ray_tmp)),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: a sweep named 'done' already exists in {first}; continue it with `ssl-ray resume {first}`, "
        f"or start a new one with another --name"
    ], proc.stderr[-2000:]
    assert (first / "ssl_ray_sweep.yaml").read_bytes() == before
    assert not (tmp_path / "mlflow.db").exists() and not ray_tmp.exists()  # refused before any store or Ray


def test_the_recipe_name_moves_on_to_a_free_one(tmp_path):
    from ssl_ray.config import SweepConfig
    from ssl_ray.sweep.claim import claim, claim_free, next_name

    base = SweepConfig(name="vicreg_digits", storage_path=str(tmp_path))
    claim(base)
    assert claim_free(base).name == "vicreg_digits-2"
    assert claim_free(base).name == "vicreg_digits-3"
    assert next_name("run-9") == "run-10" and next_name("a") == "a-2"


def test_a_new_sweep_never_joins_an_old_parent_run(tmp_path):
    """A sweep directory removed and made again by a new sweep: the store's old sweep run is not joined."""
    from ssl_ray.errors import ConfigError
    from ssl_ray.tracking import get_or_create_parent_run

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    old = get_or_create_parent_run(uri, "x", str(tmp_path / "x"), {}, create=True)
    assert get_or_create_parent_run(uri, "x", str(tmp_path / "x"), {}) == old  # a resume finds it
    with pytest.raises(ConfigError, match="already has a sweep run"):
        get_or_create_parent_run(uri, "x", str(tmp_path / "x"), {}, create=True)


@pytest.fixture
def signed_sweep(tmp_path, monkeypatch):
    from ssl_ray.config import SweepConfig
    from ssl_ray.sweep.claim import claim

    monkeypatch.setenv("SSL_RAY_KEY_FILE", str(tmp_path / "key"))
    from ssl_ray.sweep.signed_state import snapshot

    d = claim(SweepConfig(name="mine", storage_path=str(tmp_path / "sweeps")))
    (d / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    (d / "tuner.pkl").write_bytes(__import__("pickle").dumps({"what": "the sweep's own"}))
    snapshot(d)  # as the running sweep's driver signs Tune's state
    return d


def resume(d, env, *extra):
    return subprocess.run(
        [PY, "-m", "ssl_ray.cli", "resume", str(d), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )


def test_resume_refuses_a_sweep_this_user_did_not_sign(signed_sweep, clean_env):
    from ssl_ray.errors import ConfigError
    from ssl_ray.sweep.claim import check_trusted, trust

    env = dict(clean_env, SSL_RAY_KEY_FILE=os.environ["SSL_RAY_KEY_FILE"])
    check_trusted(signed_sweep)  # what claim wrote is trusted
    settings = signed_sweep / "ssl_ray_sweep.yaml"
    settings.write_text(settings.read_text().replace("num_samples: 1", "num_samples: 2"))  # changed by someone
    proc = resume(signed_sweep, env)
    assert (
        proc.returncode == 2
        and proc.stderr.startswith("error: --resume")
        and "not signed with your ssl_ray key" in proc.stderr
    )
    assert "unpickles" in proc.stderr and "--trust" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    (signed_sweep / "ssl_ray_sweep.sig").unlink()  # a folder from elsewhere: no signature at all
    with pytest.raises(ConfigError, match="not signed"):
        check_trusted(signed_sweep)
    trust(signed_sweep)  # what `ssl-ray resume --trust` does before resuming
    check_trusted(signed_sweep)
    os.chmod(signed_sweep, 0o777)  # a folder others may write to: its state could be replaced
    try:
        proc = resume(signed_sweep, env)
        assert proc.returncode == 2 and "owned or writable by another user" in proc.stderr
    finally:
        os.chmod(signed_sweep, 0o755)


class RunsCode:
    """Unpickling it creates a file: the proof that a pickle's code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_resume_unpickles_only_what_the_sweep_signed(signed_sweep, clean_env, tmp_path):
    """The signature covers Tune's state, not only the settings: a replaced tuner.pkl is refused in one line and never
    unpickled; a state file the sweep never signed (a planted newer experiment state) is removed before Tune reads it;
    a snapshot changed by hand is not signed."""
    import pickle

    from ssl_ray.errors import ConfigError
    from ssl_ray.sweep.claim import check_trusted

    env = dict(clean_env, SSL_RAY_KEY_FILE=os.environ["SSL_RAY_KEY_FILE"])
    signed = (signed_sweep / "tuner.pkl").read_bytes()
    marker = tmp_path / "the pickle ran"
    (signed_sweep / "tuner.pkl").write_bytes(pickle.dumps(RunsCode(marker)))
    proc = resume(signed_sweep, env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "tuner.pkl is not the one this sweep signed" in lines[0], (
        proc.stderr
    )
    assert not marker.exists()  # refused before anything was unpickled
    (signed_sweep / "tuner.pkl").write_bytes(signed)
    planted = signed_sweep / "experiment_state-2099-01-01_00-00-00.json"  # the newest: the one Tune would read
    planted.write_text('{"trial_data": "planted"}')
    (signed_sweep / "experiment_state-2026-01-01_00-00-00.json").write_text('{"changed": 1}')
    check_trusted(signed_sweep)
    assert not planted.exists() and (signed_sweep / "experiment_state-2026-01-01_00-00-00.json").read_text() == "{}"
    (signed_sweep / "ssl_ray_signed" / "tuner.pkl").write_bytes(pickle.dumps(RunsCode(marker)))  # the snapshot itself
    with pytest.raises(ConfigError, match="Ray Tune state is not signed"):
        check_trusted(signed_sweep)
    assert not marker.exists()
