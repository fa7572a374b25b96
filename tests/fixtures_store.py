"""Store fixtures (owned by the storage work).

``store``: an upgraded :class:`~mcpgw_sdk.sqlstore.SqlStore` on each backend of
``db_url`` (SQLite, PostgreSQL, MySQL/MariaDB). ``sqlite_store``: the same on a
SQLite file only. :func:`make_document` builds a small valid config document;
:func:`seed_console_users` adds the console tests' tenants and users.
"""

from __future__ import annotations

import pytest

from mcpgw_sdk.sqlstore import SqlStore


def make_document(name: str = "users", *, tenant: str = "default", prefix: str | None = None,
                  tools: tuple[str, ...] = ("get_user",), endpoint: str = "http://127.0.0.1:9/users/{{ args.id }}",
                  server: str | None = None) -> dict:
    """A small valid config document: one REST server named ``server`` (default: ``name``) behind one router."""
    server = server or name
    return {
        "name": name,
        "tenant": tenant,
        "routers": [{"prefix": prefix or f"/{tenant}/{name}", "server": server}],
        "servers": [{"name": server, "allowedTools": list(tools)}],
        "tools": [{"name": tool, "description": f"{tool} tool", "method": "GET", "endpoint": endpoint,
                   "args": [{"name": "id", "position": "query", "required": False, "type": "string"}]}
                  for tool in tools],
    }


CONSOLE_TENANTS = {"bob": "acme", "eve": "beta"}


def seed_console_users(store, passwords: dict[str, str]) -> None:
    """Tenants ``acme`` and ``beta``, then the users of ``passwords`` in order: ``admin`` an admin, any other a
    member of its tenant in :data:`CONSOLE_TENANTS` (bob of acme, eve of beta)."""
    store.create_tenant("acme", prefix="/acme")
    store.create_tenant("beta", prefix="/beta")
    for name, password in passwords.items():
        if name == "admin":
            store.create_user(name, password, role="admin")
        else:
            store.create_user(name, password, role="member", tenants=[CONSOLE_TENANTS[name]])


def _open(url: str) -> SqlStore:
    store = SqlStore(url)
    store.upgrade()
    return store


@pytest.fixture
def store(db_url):
    """An upgraded SqlStore on a fresh database of each backend; closed at teardown."""
    s = _open(db_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(sqlite_url):
    """An upgraded SqlStore on a fresh SQLite file; closed at teardown."""
    s = _open(sqlite_url)
    yield s
    s.close()
