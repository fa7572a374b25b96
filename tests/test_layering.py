"""Interfaces import no implementation: the store and session factories live apart from them."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``module``."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              timeout=60).stdout.split())


@pytest.mark.parametrize(("module", "absent"), [
    ("mcpgw_sdk.store", {"mcpgw_sdk.sqlstore", "mcpgw_sdk.yamlstore", "mcpgw_sdk.opening", "peewee"}),
    ("mcpgw_sdk", {"mcpgw_sdk.sqlstore", "mcpgw_sdk.opening", "peewee"}),  # gevent patches after this import
    ("gateway_server.sessions", {"gateway_server.sessions_redis", "redis"}),
])
def test_an_interface_does_not_import_its_implementations(module, absent):
    loaded = _loaded_after(module)
    assert module in loaded and not loaded & absent


def test_the_factory_imports_the_implementations():
    assert {"mcpgw_sdk.sqlstore", "mcpgw_sdk.yamlstore"} <= _loaded_after("mcpgw_sdk.opening")


def test_each_sql_part_implements_its_interface():
    from mcpgw_sdk.sql.accounts import SqlAccounts
    from mcpgw_sdk.sql.activity import SqlActivity
    from mcpgw_sdk.sql.config import SqlConfig
    from mcpgw_sdk.sql.values import SqlValues
    from mcpgw_sdk.sqlstore import SqlStore
    from mcpgw_sdk.store import AccountStore, ActivityStore, ConfigStore, Store, ValueStore

    for part, interface in ((SqlConfig, ConfigStore), (SqlAccounts, AccountStore), (SqlActivity, ActivityStore),
                            (SqlValues, ValueStore)):
        assert issubclass(part, interface) and issubclass(SqlStore, part)
        assert not set(interface.__abstractmethods__) - set(vars(part)) - {"close", "upgrade", "ping",
                                                                           "migration_status", "check_schema"}
    assert issubclass(SqlStore, Store) and not SqlStore.__abstractmethods__
