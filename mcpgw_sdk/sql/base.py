"""What every part of the SQL store shares: connections, transactions, errors, a few row lookups.

Concurrency. Every config write (documents, tenants, keys, memberships) runs in
one transaction whose FIRST statement bumps the revision row
(``UPDATE config_revision SET value = value + 1 WHERE id = 1``). On PostgreSQL
and MySQL (both in READ COMMITTED) that row lock serialises config writers, so
each one validates against what the previous one committed; on SQLite the
write transaction is ``BEGIN IMMEDIATE``, which serialises writers the same
way. Unique indexes (document (tenant, name), router_prefix.prefix) back these
checks up. ``load_config`` reads in one REPEATABLE READ (snapshot) transaction.

Connections. PostgreSQL and MySQL use a pool of at most 20 connections per
store; SQLite a pool of per-file connections (WAL, foreign keys, busy timeout).
Each call checks a connection out and returns it, so threads and gevent
greenlets never share one. A call that fails on a dead connection (the server
restarted) discards it and every idle one: the next call reconnects. Driver
errors leave this module as :class:`StorageError` with the masked URL.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

import peewee as pw
from playhouse.pool import MaxConnectionsExceeded

from .. import dburl, migrations, models
from ..errors import ConfigError, McpgwError, MigrationRequired, NotFound, StorageError

T = TypeVar("T")
# the logger keeps the name it had before the store was split, so log filters still match
log = logging.getLogger("mcpgw_sdk.sqlstore")


class _NoChange(Exception):
    """Raised inside a write transaction to roll it back (no revision bump) and return ``result``."""

    def __init__(self, result):
        self.result = result


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _naive(value: datetime | None) -> datetime | None:
    """UTC without tzinfo, as stored. Naive inputs are taken as UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _aware(value) -> datetime | None:
    """The stored naive UTC value as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class SqlBase:
    """The connection, transaction and error handling under every part of :class:`~mcpgw_sdk.sqlstore.SqlStore`."""

    def __init__(self, url: str):
        self.info = dburl.parse(url)
        self.url = self.info.masked
        self.db = dburl.open_database(self.info)
        self.m = models.define(self.db)
        self._pid = os.getpid()
        sqlite = self.info.kind == "sqlite"
        self._write_begin = ("IMMEDIATE",) if sqlite else ()
        self._snapshot_begin = () if sqlite else ("REPEATABLE READ",)
        rev = self.m.ConfigRevision
        self._revision_sql = self.db.get_sql_context().sql(
            rev.select(rev.value).where(rev.id == 1)).query()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- connections and errors ------------------------------------------------
    def _error(self, exc: BaseException, *, connecting: bool = False) -> StorageError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.info.password:
            reason = reason.replace(self.info.password, "***")
        what = "cannot connect to" if connecting else "error from"
        err = StorageError(f"{what} database at {self.url}: {reason}")
        err.connecting = connecting
        return err

    def _discard(self) -> None:
        """Drop this caller's connection and every idle one (after a connection-level failure)."""
        db = self.db
        if self.info.kind == "sqlite":
            return  # a local file: nothing went away, and :memory: would lose its data
        try:
            if not db.is_closed():
                db.manual_close()
        except Exception:  # noqa: BLE001 - the connection is already broken
            db._state.reset()
        try:
            db.close_idle()
        except Exception:  # noqa: BLE001
            pass

    @contextmanager
    def _conn(self):
        """A connection for the duration of one store call (re-entrant within a thread/greenlet)."""
        db = self.db
        if self._pid != os.getpid():
            # A forked child (gunicorn worker) must not touch its parent's sockets, not even to close them.
            db.dispose()
            self._pid = os.getpid()
        if not db.is_closed():
            yield
            return
        try:
            db.connect()
        except (pw.PeeweeException, MaxConnectionsExceeded, OSError) as exc:
            raise self._error(exc, connecting=True) from None
        try:
            yield
        except pw.IntegrityError:
            raise
        except McpgwError:
            raise
        except (UnicodeError, ValueError) as exc:
            # The driver refused a value (NUL for PostgreSQL, a lone surrogate for all): the caller's input.
            if isinstance(exc, UnicodeError) or "NUL" in str(exc):
                raise ConfigError("a value holds a character the database cannot store (NUL or a lone "
                                  "surrogate)") from None
            raise
        except (pw.OperationalError, pw.InterfaceError) as exc:
            self._discard()
            raise self._error(exc) from exc
        except pw.DatabaseError as exc:
            raise self._error(exc) from exc
        finally:
            if not db.is_closed():
                try:
                    db.close()
                except Exception:  # noqa: BLE001 - returning a broken connection fails; drop it
                    self._discard()

    def _run(self, fn: Callable[[], T], *, begin: tuple | None = None, retry: bool = False) -> T:
        """Run ``fn`` on a connection, inside a transaction when ``begin`` is given.

        With ``retry`` (reads only), a failure on a pooled connection that turned
        out dead is retried once on a fresh one.
        """
        for attempt in (0, 1):
            try:
                with self._conn():
                    if begin is None:
                        return fn()
                    with self.db.atomic(*begin):
                        return fn()
            except StorageError as exc:
                if not retry or attempt or getattr(exc, "connecting", False):
                    raise
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[], T]) -> T:
        return self._run(fn, retry=True)

    def _write(self, fn: Callable[[], T], *, bump: bool = True) -> T:
        """Run ``fn`` in a write transaction; with ``bump`` the revision is bumped first (see module doc)."""
        def body():
            if bump:
                self._bump()
            return fn()

        try:
            return self._run(body, begin=self._write_begin)
        except _NoChange as done:
            return done.result

    def _bump(self) -> None:
        rev = self.m.ConfigRevision
        if not rev.update(value=rev.value + 1).where(rev.id == 1).execute():
            raise MigrationRequired(f"database at {self.url} has no revision row; run: mcpgw db upgrade --db {self.url}")

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        """Close every pooled connection (the store reconnects if used again)."""
        try:
            self.db.close_all()
        except Exception:  # noqa: BLE001 - closing must not fail
            pass

    def upgrade(self) -> list[str]:
        """Apply pending schema migrations; return the names applied."""
        return self._run(lambda: migrations.upgrade(self.db, self.m))

    def migration_status(self) -> list[tuple[str, bool]]:
        """Every known migration with whether it is applied."""
        return self._read(lambda: migrations.status(self.db, self.m))

    def check_schema(self) -> None:
        """Raise MigrationRequired naming the command to run when migrations are pending."""
        missing = self._read(lambda: migrations.pending(self.db, self.m))
        if missing:
            raise MigrationRequired(f"database at {self.url} needs migrations {', '.join(missing)}; "
                                    f"run: mcpgw db upgrade --db {self.url}")

    def ping(self) -> None:
        """Raise StorageError when the database cannot be reached."""
        self._read(lambda: self.db.execute_sql("SELECT 1").fetchone())

    @property
    def server(self) -> str:
        """The kind of database server, e.g. ``MariaDB 10.11.19`` (after the first connection)."""
        if self.info.kind == "mysql":
            return getattr(self.db, "server_name", "MySQL")
        return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[self.info.kind]

    # -- rows the parts look up (inside the caller's transaction) -----------------
    def _tenant_row(self, name: str):
        row = self.m.Tenant.get_or_none(self.m.Tenant.name == name)
        if row is None:
            raise NotFound(f"tenant {name!r} does not exist")
        return row

    def _user_row(self, name: str):
        row = self.m.User.get_or_none(self.m.User.name == name)
        if row is None:
            raise NotFound(f"user {name!r} does not exist")
        return row

    def _drop_secrets(self, kind: str, ids: list[int]) -> None:
        """Delete the secrets of these owners (inside the caller's transaction)."""
        if ids:
            S = self.m.Secret
            S.delete().where(S.owner_kind == kind, S.owner_id.in_(ids)).execute()
