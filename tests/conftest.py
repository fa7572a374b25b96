"""Shared fixtures: databases on every backend, subprocesses, free ports.

Backends come from ``MCPGW_TEST_BACKENDS`` (default ``sqlite,postgresql,mysql``).
A backend that cannot be reached is skipped locally but fails under CI
(``CI=true``), where a skipped backend test would hide a real failure.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.helpers import Proc

pytest_plugins = ["tests.fixtures_store", "tests.fixtures_gateway"]

PG_ADMIN = os.environ.get("MCPGW_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("MCPGW_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = [b.strip() for b in os.environ.get("MCPGW_TEST_BACKENDS", "sqlite,postgresql,mysql").split(",") if b.strip()]


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"backend unavailable in CI: {reason}")
    pytest.skip(reason)


def _pg_database():
    import psycopg2

    name = "mcpgw_t_" + uuid.uuid4().hex[:12]
    try:
        conn = psycopg2.connect(PG_ADMIN, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"PostgreSQL at {PG_ADMIN}: {exc}")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]

    def drop():
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    return f"{base}/{name}", drop


def _mysql_database():
    import pymysql

    name = "mcpgw_t_" + uuid.uuid4().hex[:12]
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3,
                               autocommit=True)
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"MySQL at {MY_ADMIN}: {exc}")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    base = MY_ADMIN.rsplit("/", 1)[0]

    def drop():
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()

    return f"{base}/{name}", drop


def make_database(backend: str, tmp_path) -> tuple[str, callable]:
    """A fresh, empty database URL on ``backend`` and a function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'mcpgw.db'}", lambda: None
    if backend == "postgresql":
        return _pg_database()
    if backend == "mysql":
        return _mysql_database()
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

    class Procs:
        def __init__(self):
            self.items: list[Proc] = []

        def start(self, args, *, env=None, name="proc", cwd=None) -> Proc:
            proc = Proc(list(args), env=env, cwd=cwd, log=tmp_path / f"{name}-{len(self.items)}.log")
            self.items.append(proc)
            return proc

    holder = Procs()
    yield holder
    for proc in reversed(holder.items):
        proc.stop()
