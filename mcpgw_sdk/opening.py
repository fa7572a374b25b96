"""Open a store from its URL: :func:`open_store`.

Kept apart from the interfaces (:mod:`mcpgw_sdk.store`) so that the implementations
import the interfaces and this module imports the implementations, never the reverse.
It loads peewee, so :mod:`mcpgw_sdk` re-exports :func:`open_store` lazily.
"""

from __future__ import annotations

from . import settings
from .sqlstore import SqlStore
from .yamlstore import YamlStore


def open_store(url: str | None = None, *, check: bool = True) -> SqlStore | YamlStore:
    """Open the store at ``url`` (default: the ``database_url`` setting).

    ``sqlite:///file.db``, ``postgresql://user:pw@host/db``, ``mysql://user:pw@host/db``
    (MariaDB too) open a :class:`~mcpgw_sdk.sqlstore.SqlStore` (every part of
    :class:`~mcpgw_sdk.store.Store`); ``yaml:///dir`` a read-only
    :class:`~mcpgw_sdk.yamlstore.YamlStore` (the config part only). With ``check``
    the schema must be current (MigrationRequired otherwise).

    >>> store = open_store("sqlite:///:memory:", check=False); store.upgrade()  # doctest: +SKIP
    """
    url = url if url is not None else settings.resolve().database_url
    if url.startswith("yaml://"):
        return YamlStore(url)
    store = SqlStore(url)
    if check:
        store.check_schema()
    return store
