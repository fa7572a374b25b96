"""The SQL store: peewee on SQLite, PostgreSQL and MySQL/MariaDB.

>>> store = SqlStore("sqlite:///:memory:"); store.upgrade()
['0001_initial', '0002_secrets', '0003_checked']
>>> store.revision()
1

One class composed of one part per concern (:mod:`mcpgw_sdk.sql`), all sharing the
connection and transaction handling of :mod:`mcpgw_sdk.sql.base`, where the rules
on concurrency and connections are written down.
"""

from __future__ import annotations

from .sql.accounts import SqlAccounts
from .sql.activity import SqlActivity
from .sql.config import SqlConfig
from .sql.values import SqlValues
from .store import Store


class SqlStore(SqlConfig, SqlAccounts, SqlActivity, SqlValues, Store):
    """A :class:`~mcpgw_sdk.store.Store` on SQLite, PostgreSQL or MySQL/MariaDB (see :mod:`mcpgw_sdk.dburl`).

    >>> store = SqlStore("postgresql://u:pw@127.0.0.1/mcpgw")  # doctest: +SKIP
    """

    def __repr__(self) -> str:
        return f"<SqlStore {self.url}>"

    def __enter__(self) -> SqlStore:
        return self
