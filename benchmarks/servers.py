"""Throwaway servers for the tests and benchmarks: a real PostgreSQL cluster in a temporary folder, and a real
``mlflow server`` on 127.0.0.1 over any backend store. No mocks: both are the programs a cluster's head runs.

    with postgres() as pg:                                   # initdb + pg_ctl start, Unix socket only
        uri = pg.database("mlflow")                          # postgresql+psycopg://postgres@/mlflow?host=...
        with mlflow_server(folder, backend=uri) as base:     # http://127.0.0.1:<port>
            ...

PostgreSQL comes from the system (Debian's ``postgresql`` package; ``scripts/setup.sh`` installs it as root):
its ``initdb`` refuses to run as root, so as root the cluster runs as the ``postgres`` user, in a folder
only that user (and root) can enter. It listens on no TCP port, only on a Unix socket in that folder, and
trusts whoever reaches the socket.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
INSTALL = "apt-get install -y postgresql (scripts/setup.sh does, as root)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str:
    """A PostgreSQL server program: on the PATH, else the newest of Debian's /usr/lib/postgresql/<v>/bin
    (Debian puts only its wrappers on the PATH)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: {INSTALL}")
    return versions[-1]


class Postgres:
    """A running cluster: ``database(name)`` creates a database and returns its SQLAlchemy URI."""

    def __init__(self, data: Path, port: int, user: str):
        self.data, self.port, self.user = data, port, user

    def conninfo(self, db: str = "postgres") -> str:
        return f"host={self.data} port={self.port} user={self.user} dbname={db}"

    def uri(self, db: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{db}?host={self.data}&port={self.port}"

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)


@contextlib.contextmanager
def postgres(fsync: bool = True, timeout: float = 60.0) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster in a temporary folder, stopped and removed at the end. ``fsync=False``
    trades durability for speed (a test's database need not survive a crash)."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    data = Path(tempfile.mkdtemp(prefix="ssl_ray_pg_"))  # in /tmp, mode 0700: not under pytest's root-only folders
    as_user: list = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to the postgres user
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(data)
            raise RuntimeError(
                f"running as root and there is no postgres user to run PostgreSQL as: {INSTALL}"
            ) from None
        os.chown(data, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()  # names the socket file (.s.PGSQL.<port>); nothing listens on TCP
    log = data.parent / f"{data.name}.log"
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            text=True,
        )
        opts = f"-k {data} -p {port} -c listen_addresses='' -c max_connections=300" + ("" if fsync else " -c fsync=off")
        if as_user:
            log.touch()
            os.chown(log, os.stat(data).st_uid, os.stat(data).st_gid)
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", str(int(timeout)), "start"],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as e:
        tail = (e.stderr or "")[-2000:] + (log.read_text()[-2000:] if log.exists() else "")
        shutil.rmtree(data, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {tail}") from None
    try:
        yield Postgres(data, port, "postgres")
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
        log.unlink(missing_ok=True)


@contextlib.contextmanager
def mlflow_server(
    folder: Path, backend: Optional[str] = None, workers: int = 1, timeout: float = 90.0
) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (its store ``backend``, by default SQLite in ``folder``; artifacts
    under ``folder``), answering /health; yields its base URL and stops it (its whole process group) at the end."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # MLflow 3's server also starts a job runner and eight huey consumers (its GenAI jobs), each a Python process
    # importing mlflow: about 25 s of CPU competing with the sweep on 2 cores, for jobs ssl_ray never submits.
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = folder / "server.log"
    proc = subprocess.Popen(
        [
            MLFLOW,
            "server",
            "--backend-store-uri",
            backend or f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {log.read_text()[-3000:]}")
            if time.time() > deadline:
                raise RuntimeError(f"mlflow server did not answer /health in {timeout:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # uvicorn can take its time to drain under load: the run is over
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
