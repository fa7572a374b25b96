"""Shared fixtures: databases on every backend, subprocesses, free ports.

Backends come from ``MCPGW_TEST_BACKENDS`` (default ``sqlite,postgresql,mysql``).
A backend that cannot be reached is skipped locally but fails under CI
(``CI=true``), where a skipped backend test would hide a real failure.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.browser import launch
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


@pytest.fixture(scope="module")
def browser(stack):
    """Headless Chromium for a browser test module (see tests/browser.py).

    It comes after the module's own ``stack`` fixture, which skips the module where Playwright or Chromium
    is missing and starts the console the pages open.
    """
    with launch() as chromium:
        yield chromium


# -- the two layers ----------------------------------------------------------------------------------
#
# The fast layer (``make test-fast``, ``pytest -m fast``) runs in-process: the SDK and the store, the
# config rules, the MCP core and the protocol rules, and the transports through a WSGI test client of
# the app factory (tests/test_gateway_app.py), plus the modules' doctests. The end-to-end layer is the
# rest: real ``mcpgw`` processes, the official clients, Node tools, a browser, Redis. ``make test`` runs
# both.
#
# A test belongs to the fast layer when its module is listed below and it asks for none of the fixtures
# that start processes or need a service (E2E_FIXTURES), nor carries ``@pytest.mark.e2e`` (for a test
# that starts a process by itself). A new module of in-process tests goes in FAST_MODULES.

FAST_MODULES = frozenset({
    "test_access", "test_api", "test_backend_http", "test_big_results", "test_broken_documents", "test_cli",
    "test_config_model", "test_console_editing", "test_demo", "test_disable", "test_display", "test_docs", "test_doctests",
    "test_documents", "test_gateway_app", "test_guard", "test_guard_authority", "test_guard_ipv6",
    "test_gunicorn", "test_host_check", "test_key_membership", "test_layering", "test_mcp_auth",
    "test_migrations", "test_modern", "test_mrtr", "test_mrtr_legacy", "test_names", "test_no_remote_assets",
    "test_openapi", "test_outbound_fetch", "test_prefixes", "test_protocol", "test_redaction",
    "test_render_limits", "test_rest_backend", "test_rest_elicit", "test_scale", "test_session_limits",
    "test_settings", "test_stdio_policy", "test_store", "test_store_bulk", "test_strict_json", "test_templates",
    "test_token_exchange", "test_unla", "test_upstream_guard", "test_url_safe_args", "test_user_secrets",
    "test_workspace", "test_yamlstore",
})

#: Shared fixtures that start processes or need a service, and the listed modules' own (``api``: an API
#: process; ``demo``, ``env``, ``gw``, ``tx``, ``world``: a module's backend or gateway processes).
E2E_FIXTURES = frozenset({
    "procs", "demo_backend", "seeded_store", "start_gateway", "gateway", "shared_gateway", "http_url", "sse_url",
    "redis_url", "api", "demo", "env", "gw", "tx", "world",
})


def pytest_configure(config):
    # Registered here rather than in setup.cfg, beside the lists that decide them.
    config.addinivalue_line("markers", "fast: the fast layer, in-process (set from FAST_MODULES; make test-fast)")
    config.addinivalue_line("markers", "e2e: starts a process itself, though its module is in FAST_MODULES")


def pytest_collection_modifyitems(config, items):
    """Mark the fast layer's tests ``fast`` (see FAST_MODULES)."""
    for item in items:
        module = item.nodeid.split("::", 1)[0].rpartition("/")[2].removesuffix(".py")
        if (module in FAST_MODULES and not E2E_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("e2e") is None):
            item.add_marker(pytest.mark.fast)


def pytest_ignore_collect(collection_path, config):
    """Under ``-m fast`` alone, skip importing the end-to-end modules (their imports cost seconds)."""
    if (config.getoption("markexpr") == "fast" and collection_path.suffix == ".py"
            and collection_path.name.startswith("test_") and collection_path.stem not in FAST_MODULES):
        return True
    return None
