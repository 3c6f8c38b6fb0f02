"""Exit codes tell the truth, a signal ends a sweep cleanly, and a local sweep's Ray listens on loopback only.

* SIGINT to the driver of a real sweep: exit 130, one line on stderr with the ``ssl-ray resume`` command, no
  traceback or native stack dump, Ray shut down, the sweep's run KILLED. (Slow: the resume continues without
  ``--trust`` -- Tune's state was signed as the sweep ran -- and SIGTERM ends it as cleanly, exit 143.)
* While it trains, every socket its processes listen on is bound to 127.0.0.1 (or ::1), and Ray's token file is 0600.
* A trial whose directory cannot be written (a real immutable directory: ``chattr +i`` as root, mode 0555 otherwise)
  errors: the sweep exits 1, says so in one line, and its run is FAILED. (Probes given up: the shared HTTP sweep
  exits 1 too, ``conftest.tiny_http``.)
"""

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PY, ROOT, one_trial_sweep_cmd

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
DUMPS = ("Traceback", "*** ", "SIGSEGV", "Stack trace", "core dumped", "Fatal Python error")


def start(cmd, tmp: Path, tag: str, env):
    out, err = open(tmp / f"{tag}.out", "w"), open(tmp / f"{tag}.err", "w")
    return subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT, start_new_session=True)


def wait_for(path: Path, pattern: str, proc, timeout: float = 400) -> None:
    deadline = time.time() + timeout
    while not re.search(pattern, path.read_text()):
        assert proc.poll() is None, path.read_text()[-3000:] + path.with_suffix(".err").read_text()[-3000:]
        assert time.time() < deadline, f"no {pattern!r} in {timeout} s"
        time.sleep(0.5)


def listening(pid: int):
    """``[(address, process name)]`` of every listening TCP socket of ``pid`` and its descendants."""
    import psutil

    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    out = []
    for p in procs:
        try:
            out += [(c.laddr.ip, p.name()) for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:  # a process that ended meanwhile
            pass
    return out


def ended_cleanly(proc, tmp: Path, tag: str, signum: int, sweep_dir: Path) -> None:
    assert proc.wait(timeout=180) == 128 + signum
    err, out = (tmp / f"{tag}.err").read_text(), (tmp / f"{tag}.out").read_text()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[resume] ")]  # a resume's own note
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"stopped by {signal.Signals(signum).name}; continue the sweep with: ")
    assert lines[0].endswith(f"resume {sweep_dir}"), lines[0]
    assert not [d for d in DUMPS if d in err + out], (err + out)[-3000:]


def parent_run(tmp: Path, name: str):
    from ssl_ray.tracking import TAG_KIND, client

    c = client(f"sqlite:///{tmp / 'mlflow.db'}")
    exp = c.get_experiment_by_name(name)
    return next(r for r in c.search_runs([exp.experiment_id]) if r.data.tags.get(TAG_KIND) == "sweep")


def stopped_sweep(tmp: Path, env, name: str = "sig"):
    """A real sweep SIGINTed after its first epoch: while it trains, the listening sockets of its processes; then how
    it ended. Returns the sweep directory."""
    import psutil

    sweep_dir = tmp / "sweeps" / name
    proc = start(one_trial_sweep_cmd(tmp, name), tmp, "first", env)
    try:
        wait_for(tmp / "first.out", r"epoch 1/6", proc)
        socks = listening(proc.pid)
        names = {n for _, n in socks}
        assert {"gcs_server", "raylet"} <= names, socks  # Ray's own servers, the driver's among the rest
        assert socks and all(ip in LOOPBACK for ip, _ in socks), [s for s in socks if s[0] not in LOOPBACK]
        token = Path.home() / ".ray" / "auth_token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        tree = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGINT)
        ended_cleanly(proc, tmp, "first", signal.SIGINT, sweep_dir)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(2)
    assert not [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    run = parent_run(tmp, name)
    assert run.info.status == "KILLED" and "interrupted by SIGINT" in run.data.tags["ssl_ray.stop_reason"]
    return sweep_dir


def test_a_signal_ends_the_sweep_cleanly_and_its_ray_listens_on_loopback_only(tmp_path, clean_env):
    stopped_sweep(tmp_path, clean_env)


@pytest.mark.slow  # a second sweep start (75 s in all); the default suite keeps the SIGINT half above
def test_a_stopped_sweep_resumes_without_trust_and_sigterm_ends_it_cleanly(tmp_path, clean_env):
    """The resume needs no --trust (Tune's state was signed as the sweep ran); SIGTERM ends it as cleanly."""
    sweep_dir = stopped_sweep(tmp_path, clean_env)
    again = start(
        [PY, str(ROOT / "experiments" / "sweep_vicreg.py"), "--resume", str(sweep_dir), "--num-cpus", "2"],
        tmp_path,
        "again",
        clean_env,
    )
    try:
        wait_for(tmp_path / "again.out", r"epoch [2-6]/6", again)
        again.send_signal(signal.SIGTERM)
        ended_cleanly(again, tmp_path, "again", signal.SIGTERM, sweep_dir)
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)
    assert parent_run(tmp_path, "sig").info.status == "KILLED"


def make_immutable(path: Path) -> None:
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("root, on a file system without chattr +i: no directory can be made read-only here")
    else:
        path.chmod(0o555)


@pytest.mark.slow  # 25 s: a sweep whose trial errors at once; the shared HTTP sweep checks exit 1 for probes given up
def test_a_trial_that_cannot_write_its_directory_fails_the_sweep(tmp_path, clean_env):
    train = tmp_path / "sweeps" / "ro" / "train"  # where the trial's Ray Train run keeps its checkpoints
    train.mkdir(parents=True)
    make_immutable(train)
    try:
        proc = subprocess.run(
            one_trial_sweep_cmd(tmp_path, "ro", epochs=1),
            capture_output=True,
            text=True,
            env=clean_env,
            cwd=ROOT,
            timeout=600,
        )
    finally:
        subprocess.run(["chattr", "-i", str(train)], capture_output=True) if os.geteuid() == 0 else train.chmod(0o755)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sweep failed: 1 trial(s) errored (exit code 1)" in proc.stdout
    assert parent_run(tmp_path, "ro").info.status == "FAILED"
