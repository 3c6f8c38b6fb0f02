"""Tracking URIs: the one check that a URI can work, the one mapping of a URI to the store MLflow opens, and the
mask that keeps its password out of every file, tag and console line. No mlflow import: this runs on the
bad-input path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ssl_ray.errors import ConfigError

# a scheme is short: bounding it keeps the search linear on a long line (an unbounded one backtracks over every
# run of letters, minutes on an error line quoting a value of 100,000 characters)
SECRET_IN_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}://[^/\s:@'\"]*:)[^/\s@'\"]+@")


SQLITE = "sqlite:///"  # then the database file's path: sqlite:////abs/mlflow.db


def sqlite_file(uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///<path>`` URI; None for any other store."""
    return Path(uri[len(SQLITE) :]) if uri.startswith(SQLITE) else None


def mask_uri(text: str) -> str:
    """``text`` (a URI, or a command line holding URIs) with the password of every URI's user part replaced
    by ``***`` (``http://me:***@host``): what is written to files, tags and the console."""
    return SECRET_IN_URI.sub(r"\1***@", text) if isinstance(text, str) else text


def has_secret(uri: str) -> bool:
    return isinstance(uri, str) and mask_uri(uri) != uri


# the Python package that provides each database driver module SQLAlchemy imports (what to pip install)
DRIVER_PACKAGES = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
    "mysql": "mysql-connector-python",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
}
DATABASES = ("postgresql", "mysql", "mssql")


def store_uri(uri: str) -> str:
    """The URI as MLflow opens it. A plain ``postgresql://`` means psycopg 3, the driver ssl_ray installs
    (``postgresql+psycopg://``): SQLAlchemy 2.0 would pick psycopg2 for it, 2.1 picks psycopg."""
    if isinstance(uri, str) and uri.startswith("postgresql://"):
        return "postgresql+psycopg://" + uri[len("postgresql://") :]
    return uri


def is_database(uri: str) -> bool:
    """A database URI MLflow opens itself (no server between): ``postgresql[+driver]://``, ``mysql...``,
    ``mssql...``."""
    scheme = uri.split("://", 1)[0] if isinstance(uri, str) and "://" in uri else ""
    return scheme.split("+", 1)[0] in DATABASES


def check_database(uri: str, timeout: float = 5.0) -> None:
    """A database URI whose driver is installed (else one line saying what to install), and, for PostgreSQL,
    whose server answers and has the database."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    try:
        url = make_url(store_uri(uri))
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise ConfigError(f"MLflow URI {mask_uri(uri)!r}: {str(e).splitlines()[0]}") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        module = (getattr(e, "name", None) or str(e)).split(".")[0]
        pkg = DRIVER_PACKAGES.get(module, module)
        also = (
            " (or use postgresql://, which ssl_ray's psycopg serves)"
            if url.get_backend_name() == "postgresql" and module != "psycopg"
            else ""
        )
        raise ConfigError(
            f"MLflow URI {mask_uri(uri)!r}: its driver {url.drivername} needs the Python package {pkg}, "
            f"which is not installed: .venv/bin/pip install {pkg}{also}"
        ) from None
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in ("psycopg", "psycopg2"):
        return  # other drivers name their connect timeout differently: MLflow reports a failure when it opens the store
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": max(1, int(timeout))})
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as e:
        why = str(getattr(e, "orig", None) or e).strip().splitlines()
        raise ConfigError(
            f"MLflow URI {mask_uri(uri)!r}: PostgreSQL refused or did not answer "
            f"({mask_uri(why[0] if why else type(e).__name__)})"
        ) from None
    finally:
        engine.dispose()


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail early on a tracking URI that cannot work: an unreachable server, a SQLite file in a folder
    that cannot be created, or a scheme MLflow 3 no longer takes (plain folders, ``file:``).

    A relative SQLite path (``sqlite:///mlflow.db``) is refused, not resolved: MLflow reads it from whatever
    folder each process runs in (every Ray worker has its own), so a sweep's runs would land in several
    stores; the message gives the absolute form for the folder the command ran in."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlparse

    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"MLflow URI must be a non-empty string, got {uri!r}")
    try:
        u = urlparse(uri)
        u.port  # noqa: B018 - parses the port: a malformed one raises ValueError
    except ValueError as e:
        raise ConfigError(f"MLflow URI {mask_uri(uri)!r} is malformed ({e})") from None
    if u.scheme in ("http", "https"):
        if not u.hostname:
            raise ConfigError(f"MLflow URI {mask_uri(uri)!r} names no host; expected http://<host>:<port>")
        import base64

        bare = u._replace(netloc=u.netloc.rsplit("@", 1)[-1]).geturl()  # urllib takes no user part in a URL
        req = urllib.request.Request(bare.rstrip("/") + "/health")
        if u.username is not None:
            token = base64.b64encode(f"{u.username}:{u.password or ''}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                r.read(64)
        except urllib.error.HTTPError:
            return  # it answers: a server is there (some proxies do not serve /health)
        except (urllib.error.URLError, OSError) as e:
            why = getattr(e, "reason", e)
            raise ConfigError(
                f"MLflow tracking server {mask_uri(uri)} is unreachable ({why}); start it "
                f"(mlflow server --host 127.0.0.1 --port <port>) or fix --mlflow-uri"
            ) from None
    elif u.scheme == "sqlite":
        path = uri[len(SQLITE) :] if uri.startswith(SQLITE) else ""
        if not path:
            raise ConfigError(f"MLflow URI {uri!r}: expected sqlite:///<path to a .db file>")
        if path == ":memory:":
            raise ConfigError(
                f"MLflow URI {uri!r}: an in-memory store keeps nothing; give a .db file, e.g. "
                f"sqlite:///{Path.cwd() / 'mlflow.db'}"
            )
        if not path.startswith("/"):
            raise ConfigError(
                f"MLflow URI {uri!r}: a relative path, which MLflow reads from whatever folder each "
                f"process runs in; give it absolute: sqlite:///{Path(path).expanduser().absolute()}"
            )
        db = Path(path).resolve()
        if db.is_dir():
            raise ConfigError(
                f"MLflow URI {uri!r}: {db} is a directory; name a .db file (e.g. sqlite:///{db}/mlflow.db)"
            )
        if db.is_file() and db.stat().st_size > 0:
            with db.open("rb") as f:
                if f.read(16) != b"SQLite format 3\x00":
                    raise ConfigError(f"MLflow URI {uri!r}: {db} exists and is not an SQLite database")
        from ssl_ray.paths import unwritable

        why = unwritable(db.parent)
        if why:
            raise ConfigError(f"MLflow URI {uri!r}: cannot create the database folder {db.parent} ({why})")
    elif is_database(uri):
        check_database(uri, timeout)
    elif u.scheme == "databricks":
        return
    else:
        raise ConfigError(
            f"MLflow URI {mask_uri(uri)!r}: MLflow 3 stores runs in a database or on a server; use sqlite:///<file.db> "
            f"or http://<host>:<port>"
        )
