"""The key/value part of the SQL store: small named values (the ``stored_value`` table).

The management API keeps its JWT secret, token deny-list and login counters here; the
gateway its ``requestState`` sealing secret. Writes never bump the config revision.
"""

from __future__ import annotations

from collections.abc import Callable

from ..store import ValueStore
from .base import SqlBase


class SqlValues(SqlBase, ValueStore):
    """:class:`~mcpgw_sdk.store.ValueStore` on SQL."""

    def get_value(self, key: str) -> str | None:
        """A value other parts keep in the database (e.g. a generated secret), or None."""
        SV = self.m.StoredValue
        return self._read(lambda: SV.select(SV.value).where(SV.key == key).scalar())

    def set_value(self, key: str, value: str, *, only_if_absent: bool = False) -> str:
        """Store ``value`` under ``key`` and return what is stored.

        With ``only_if_absent`` an existing value wins (safe when several
        processes generate a secret at once: all end up with the same one).
        """
        SV = self.m.StoredValue

        def put():
            current = SV.select(SV.value).where(SV.key == key).scalar()
            if current is not None and only_if_absent:
                return current
            if current is None:
                SV.insert(key=key, value=value).on_conflict_ignore().execute()
            else:
                SV.update(value=value).where(SV.key == key).execute()
            return SV.select(SV.value).where(SV.key == key).scalar()

        return self._write(put, bump=False)

    def update_value(self, key: str, change: Callable[[str | None], str | None]) -> str | None:
        """Replace the value under ``key`` by ``change(current)`` atomically; ``None`` deletes it.

        Concurrent callers on any process or replica are serialised on the row (``SELECT … FOR
        UPDATE``; SQLite's write transaction), so no update is lost: counters shared by every worker.
        """
        SV = self.m.StoredValue

        def run():
            # the row must exist to be locked; a concurrent insert of the same key waits, then does nothing
            SV.insert(key=key, value="").on_conflict_ignore().execute()
            query = SV.select(SV.value).where(SV.key == key)
            if self.info.kind != "sqlite":
                query = query.for_update()
            current = query.scalar()
            new = change(current or None)
            if new is None:
                SV.delete().where(SV.key == key).execute()
            else:
                SV.update(value=new).where(SV.key == key).execute()
            return new

        return self._write(run, bump=False)

    def delete_values(self, prefix: str, *, below: str) -> int:
        """Delete the values whose key starts with ``prefix`` and whose value sorts before ``below``."""
        SV = self.m.StoredValue
        return self._write(lambda: SV.delete().where(SV.key.startswith(prefix), SV.value < below).execute(),
                           bump=False)
