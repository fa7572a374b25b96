"""Database URLs: parse them, mask their passwords, open a peewee database for them.

>>> parse("postgresql://u:pw@db.local:5433/mcpgw").kind
'postgresql'
>>> mask("postgresql://u:secret@127.0.0.1:1/x")
'postgresql://u:***@127.0.0.1:1/x'

``sqlite:///rel.db`` is relative to the working directory, ``sqlite:////abs.db``
absolute, ``sqlite:///:memory:`` private to the store. ``postgres://`` is read as
``postgresql://``. ``mysql://`` serves MySQL and MariaDB alike: the server is
recognised from its version string, users add no flags.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import peewee
from playhouse.pool import PooledMySQLDatabase, PooledPostgresqlDatabase, PooledSqliteDatabase

from .errors import ConfigError

#: Most connections one store keeps to PostgreSQL or MySQL (per process).
MAX_CONNECTIONS = 20
#: Seconds a caller waits for a free pooled connection before StorageError.
POOL_WAIT = 30
#: Seconds to wait for the database server to accept a connection.
CONNECT_TIMEOUT = 5
#: Milliseconds SQLite waits on a locked database before failing.
SQLITE_BUSY_MS = 15000

_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql",
            "mariadb": "mysql"}


@dataclass(frozen=True)
class DbUrl:
    """A parsed database URL. ``database`` is a file path for SQLite, a database name otherwise."""

    kind: str  # sqlite | postgresql | mysql
    database: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    masked: str = ""

    @property
    def is_memory(self) -> bool:
        """True for ``sqlite:///:memory:`` (one private in-memory database)."""
        return self.kind == "sqlite" and self.database in (":memory:", "")


def mask(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (safe for logs and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse(url: str) -> DbUrl:
    """Parse a database URL; ConfigError naming the URL (masked) and the problem when it is not one."""
    masked = mask(url)
    scheme, sep, rest = url.partition("://")
    kind = _SCHEMES.get(scheme.lower().split("+")[0]) if sep else None
    if kind is None:
        raise ConfigError(f"database_url: {masked!r} is not a database URL; use sqlite:///file.db, "
                          "postgresql://user:pw@host/db, mysql://user:pw@host/db or yaml:///dir")
    if kind == "sqlite":
        path, _, query = rest.partition("?")
        if not path.startswith("/"):
            raise ConfigError(f"database_url: {masked!r}: SQLite URLs look like sqlite:///relative.db or "
                              "sqlite:////absolute.db")
        database = path[1:]
        if not database:
            raise ConfigError(f"database_url: {masked!r}: no database file given")
        return DbUrl(kind, database, params=dict(parse_qsl(query)), masked=masked)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"database_url: {masked!r}: {exc}") from None
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigError(f"database_url: {masked!r}: no database name (…/dbname at the end)")
    return DbUrl(kind, database, user=unquote(parts.username) if parts.username else None,
                 password=unquote(parts.password) if parts.password is not None else None,
                 host=parts.hostname or "127.0.0.1", port=port, params=dict(parse_qsl(parts.query)),
                 masked=masked)


# -- peewee databases --------------------------------------------------------

# The pools below hand out connections without the default round trip per checkout (a
# ``SELECT 1`` or ping), which would double the price of the revision poll. A connection
# that died (server restart) fails on use instead; the store then discards it with every
# idle one, and the next call reconnects.


class SqliteDb(PooledSqliteDatabase):
    """SQLite with WAL, foreign keys and a busy timeout on every connection, pooled per process."""

    def _connect(self):
        # Switching a new file to WAL takes an exclusive lock, and SQLite answers "database is locked" at once
        # (without its busy handler) when another process is doing the same: retry that, within the busy timeout.
        deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
        while True:
            try:
                return super()._connect()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)  # a back-off between attempts, not a synchronisation


class PostgresDb(PooledPostgresqlDatabase):
    """PostgreSQL through psycopg2, pooled (at most :data:`MAX_CONNECTIONS`)."""

    def _is_closed(self, conn):
        if conn.closed:
            return True
        import psycopg2.extensions as ext

        return conn.get_transaction_status() == ext.TRANSACTION_STATUS_UNKNOWN


class MysqlDb(PooledMySQLDatabase):
    """MySQL or MariaDB through PyMySQL, pooled; the flavour is read from the server's version string."""

    server_name = "MySQL"

    def _is_closed(self, conn):
        return not conn.open

    def _can_reuse(self, conn):
        try:
            if conn.server_status & 1:  # SERVER_STATUS_IN_TRANS: a transaction was left open
                conn.rollback()
        except Exception:  # noqa: BLE001 - an unusable connection is simply not pooled again
            return False
        return True

    def _set_server_version(self, conn):
        super()._set_server_version(conn)
        raw = str(getattr(conn, "server_version", "") or "")
        self.mariadb = "maria" in raw.lower() or (self.server_version or (0,))[0] >= 10
        version = ".".join(str(part) for part in (self.server_version or ()))
        self.server_name = ("MariaDB " if self.mariadb else "MySQL ") + version


def open_database(info: DbUrl) -> peewee.Database:
    """A peewee database (not yet connected) for a parsed URL."""
    if info.kind == "sqlite":
        pragmas = {"foreign_keys": 1, "busy_timeout": SQLITE_BUSY_MS, "synchronous": "NORMAL"}
        if not info.is_memory:
            pragmas["journal_mode"] = "wal"
        # :memory: is one database per connection, so the pool holds exactly one and callers take turns.
        max_conn = 1 if info.is_memory else MAX_CONNECTIONS
        return SqliteDb(":memory:" if info.is_memory else info.database, pragmas=pragmas,
                        max_connections=max_conn, timeout=POOL_WAIT, check_same_thread=False)
    if info.kind == "postgresql":
        params = {"connect_timeout": CONNECT_TIMEOUT, **info.params}
        if info.password is not None:
            params["password"] = info.password
        if info.user:
            params["user"] = info.user
        return PostgresDb(info.database, host=info.host, port=info.port or 5432, max_connections=MAX_CONNECTIONS,
                          timeout=POOL_WAIT, **params)
    params = {"connect_timeout": CONNECT_TIMEOUT, "user": info.user or "root", "password": info.password or "",
              "host": info.host, "port": info.port or 3306,
              # READ COMMITTED: a writer that waited on the revision row lock sees what the previous one committed.
              "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"}
    if "charset" in info.params:
        params["charset"] = info.params["charset"]
    # DATETIME(6) keeps microseconds (audit order); LONGTEXT because TEXT stops at 64 KiB.
    return MysqlDb(info.database, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT,
                   field_types={"DATETIME": "DATETIME(6)", "TEXT": "LONGTEXT"}, **params)
