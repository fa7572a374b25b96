"""Shared fixtures: databases on every backend, subprocesses, free ports.

Backends come from ``MCPGW_TEST_BACKENDS`` (default ``sqlite,postgresql,mysql``).
A backend that cannot be reached is skipped locally but fails under CI
(``CI=true``), where a skipped backend test would hide a real failure.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.helpers import Procs, redis_available

pytest_plugins = ["tests.fixtures_store", "tests.fixtures_gateway"]

PG_ADMIN = os.environ.get("MCPGW_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("MCPGW_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = [b.strip() for b in os.environ.get("MCPGW_TEST_BACKENDS", "sqlite,postgresql,mysql").split(",") if b.strip()]


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"backend unavailable in CI: {reason}")
    pytest.skip(reason)


def _pg_connect():
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN, connect_timeout=3)
    conn.autocommit = True
    return conn


def _mysql_connect():
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3,
                           autocommit=True)


def _server_database(label: str, admin: str, connect, create: str, drop_sql: str):
    """Create a uniquely named database through ``connect()``; return its URL (beside ``admin``) and a dropper."""
    name = "mcpgw_t_" + uuid.uuid4().hex[:12]
    try:
        conn = connect()
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"{label} at {admin}: {exc}")
    with conn.cursor() as cur:
        cur.execute(create.format(name=name))
    base = admin.rsplit("/", 1)[0]

    def drop():
        with conn.cursor() as cur:
            cur.execute(drop_sql.format(name=name))
        conn.close()

    return f"{base}/{name}", drop


def make_database(backend: str, tmp_path) -> tuple[str, callable]:
    """A fresh, empty database URL on ``backend`` and a function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'mcpgw.db'}", lambda: None
    if backend == "postgresql":
        return _server_database("PostgreSQL", PG_ADMIN, _pg_connect, 'CREATE DATABASE "{name}"',
                                'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if backend == "mysql":
        return _server_database("MySQL", MY_ADMIN, _mysql_connect, "CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
                                "DROP DATABASE IF EXISTS `{name}`")
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """An empty database on each configured backend (SQLite, PostgreSQL, MySQL/MariaDB)."""
    url, drop = make_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture
def sqlite_url(tmp_path):
    """An empty SQLite database file URL."""
    return f"sqlite:///{tmp_path / 'mcpgw.db'}"


@pytest.fixture
def procs(tmp_path):
    """Start real subprocesses with ``procs.start(args, env=…, name=…)``; all are stopped at teardown."""
    with Procs(tmp_path) as holder:
        yield holder


@pytest.fixture
def redis_url():
    """The test Redis URL (``MCPGW_TEST_REDIS``); skipped locally, failed under CI, when Redis is down."""
    return redis_available()
