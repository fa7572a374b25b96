"""The SQL store: peewee on SQLite, PostgreSQL and MySQL/MariaDB.

>>> store = SqlStore("sqlite:///:memory:"); store.upgrade()
['0001_initial', '0002_secrets']
>>> store.revision()
1

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
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import datetime, timezone
from difflib import unified_diff
from typing import Any, TypeVar

import peewee as pw
from playhouse.pool import MaxConnectionsExceeded

from . import dburl, migrations, models, names, policy, security, settings
from . import records as r
from .errors import (
    AuthError,
    ConfigError,
    ConflictError,
    Forbidden,
    McpgwError,
    MigrationRequired,
    NotFound,
    StorageError,
)
from .store import Store

T = TypeVar("T")
log = logging.getLogger(__name__)
ROLES = ("admin", "member")
CHAT_ROLES = ("system", "user", "assistant", "tool")


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


def _decode_content(raw: Any) -> tuple[dict[str, Any], str]:
    """A stored document body as ``(mapping, "")``, or ``({}, why it cannot be read)``.

    Rows written behind the store's back (a manual UPDATE, a restored backup, an
    older version) may hold anything; one such row must cost only its own document.
    """
    try:
        text = bytes(raw).decode("utf-8") if isinstance(raw, (bytes, bytearray, memoryview)) else raw
        content = json.loads(text)
    except UnicodeDecodeError as exc:
        return {}, f"stored content is not UTF-8 text ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        return {}, f"stored content is not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        return {}, "stored content is nested too deeply"
    except (TypeError, ValueError) as exc:
        return {}, f"stored content cannot be read ({type(exc).__name__})"
    if not isinstance(content, dict):
        kind = "null" if content is None else type(content).__name__
        return {}, f"stored content is JSON {kind}, not a mapping"
    return content, ""


def _check_prefix(field: str, value: str) -> str:
    from . import documents

    return documents.check_prefix(field, value)


def _check_text(field: str, value: str | None) -> str:
    """Text stored in a column: no NUL (PostgreSQL refuses it) and no lone surrogate (nothing encodes it)."""
    errors = names.text_errors(value or "", field)
    if errors:
        raise ConfigError(errors[0], errors)
    return value or ""


MIN_PASSWORD = 8


def _check_password(password) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ConfigError(f"password: must be at least {MIN_PASSWORD} characters")


def _first_segment(prefix: str) -> str:
    return "/" + prefix.strip("/").split("/", 1)[0]


class SqlStore(Store):
    """A :class:`~mcpgw_sdk.store.Store` on SQLite, PostgreSQL or MySQL/MariaDB (see :mod:`mcpgw_sdk.dburl`).

    >>> store = SqlStore("postgresql://u:pw@127.0.0.1/mcpgw")  # doctest: +SKIP
    """

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

    def __repr__(self) -> str:
        return f"<SqlStore {self.url}>"

    def __enter__(self) -> SqlStore:
        return self

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

    # -- revision and bulk load ------------------------------------------------
    def revision(self) -> int:
        """The config revision counter (one primary-key SELECT)."""
        sql, params = self._revision_sql

        def query():
            row = self.db.execute_sql(sql, params).fetchone()
            if row is None:
                raise MigrationRequired(f"database at {self.url} has no revision row; "
                                        f"run: mcpgw db upgrade --db {self.url}")
            return int(row[0])

        return self._read(query)

    def load_config(self) -> r.ConfigSet:
        """Revision, live documents, tenants and live keys, read in one snapshot transaction."""
        m = self.m
        D, Tn = m.Document, m.Tenant
        sql, params = self._revision_sql

        # SQLite hands back TEXT that is not UTF-8 as a query-wide error: read bytes and decode per row.
        body = D.content.cast("BLOB") if self.info.kind == "sqlite" else D.content

        def load():
            revision = int(self.db.execute_sql(sql, params).fetchone()[0])
            docs = []
            for name, raw, version, updated_at, updated_by, tenant in (
                    D.select(D.name, body, D.version, D.updated_at, D.updated_by, Tn.name).join(Tn)
                    .where(D.deleted == False).order_by(Tn.name, D.name).tuples()):  # noqa: E712 - SQL expression
                content, problem = _decode_content(raw)
                try:
                    updated_at = _aware(updated_at)
                except (TypeError, ValueError):
                    updated_at = None  # only ever shown: an unreadable timestamp must not cost the document
                docs.append(r.Document(tenant=tenant, name=name, content=content, version=version,
                                       updated_at=updated_at, updated_by=updated_by, problem=problem))
            tenants = tuple(self._tenant(t) for t in Tn.select().order_by(Tn.name))
            keys = self._live_keys(_now())
            return r.ConfigSet(revision=revision, documents=tuple(docs), tenants=tenants, keys=keys)

        return self._run(load, begin=self._snapshot_begin, retry=True)

    # -- tenants -----------------------------------------------------------------
    @staticmethod
    def _tenant(row) -> r.Tenant:
        return r.Tenant(id=row.id, name=row.name, prefix=row.prefix, description=row.description or "")

    def _tenant_row(self, name: str):
        row = self.m.Tenant.get_or_none(self.m.Tenant.name == name)
        if row is None:
            raise NotFound(f"tenant {name!r} does not exist")
        return row

    def create_tenant(self, name: str, *, prefix: str | None = None, description: str = "") -> r.Tenant:
        """Create a tenant (prefix defaults to ``/name``); ConflictError when it exists."""
        names.check_account("name", name)
        prefix = _check_prefix("prefix", prefix if prefix is not None else "/" + name)
        description = _check_text("description", description)
        Tn = self.m.Tenant

        def create():
            if Tn.get_or_none(Tn.name == name) is not None:
                raise ConflictError(f"tenant {name!r} already exists")
            self._check_tenant_prefix(name, prefix)
            return self._tenant(Tn.create(name=name, prefix=prefix, description=description))

        try:
            return self._write(create)
        except pw.IntegrityError:
            raise ConflictError(f"tenant {name!r} already exists") from None

    def get_tenant(self, name: str) -> r.Tenant:
        """Return a tenant or raise NotFound."""
        return self._read(lambda: self._tenant(self._tenant_row(name)))

    def list_tenants(self) -> list[r.Tenant]:
        """All tenants, by name."""
        return self._read(lambda: [self._tenant(t) for t in self.m.Tenant.select().order_by(self.m.Tenant.name)])

    def update_tenant(self, name: str, *, prefix: str | None = None, description: str | None = None) -> r.Tenant:
        """Change a tenant's prefix or description; a new prefix must still contain its documents' routers."""
        if prefix is not None:
            prefix = _check_prefix("prefix", prefix)
        if description is not None:
            _check_text("description", description)

        def update():
            row = self._tenant_row(name)
            if prefix is not None and prefix != row.prefix:
                from . import documents

                self._check_tenant_prefix(name, prefix)

                contents = [json.loads(c) for (c,) in self.m.Document.select(self.m.Document.content)
                            .where(self.m.Document.tenant == row.id, self.m.Document.deleted == False).tuples()]  # noqa: E712
                tenants = self._tenant_map()
                tenants[name] = prefix
                problems = documents.validate_set(contents, tenants)
                if problems:
                    raise ConfigError(f"tenant {name}: prefix {prefix!r} does not fit its documents",
                                      errors=self._flatten(problems))
                row.prefix = prefix
            if description is not None:
                row.description = description
            row.save()
            return self._tenant(row)

        return self._write(update)

    def delete_tenant(self, name: str) -> None:
        """Delete a tenant without live documents (its deleted documents, keys and memberships go too)."""
        D = self.m.Document

        def delete():
            row = self._tenant_row(name)
            live = [n for (n,) in D.select(D.name).where(D.tenant == row.id, D.deleted == False).tuples()]  # noqa: E712
            if live:
                raise ConflictError(f"tenant {name!r} still has {len(live)} live document(s): {', '.join(sorted(live))}")
            K = self.m.ApiKey
            self._drop_secrets("tenant", [row.id])
            self._drop_secrets("key", [k for (k,) in K.select(K.id).where(K.tenant == row.id).tuples()])
            row.delete_instance()

        self._write(delete)

    def _tenant_map(self) -> dict[str, str]:
        return {n: p for n, p in self.m.Tenant.select(self.m.Tenant.name, self.m.Tenant.prefix).tuples()}

    def _check_tenant_prefix(self, name: str, prefix: str, tenants: dict[str, str] | None = None) -> None:
        """ConfigError unless tenant ``name`` may take ``prefix`` (called inside the writing transaction).

        The prefix must not clash with another tenant's (:func:`documents.tenant_prefix_conflicts`), and
        no other tenant's document may already serve at or under it (the root ``/`` takes nothing away).
        """
        from . import documents

        errors = [f"tenant {name}: {e}" for e in documents.tenant_prefix_conflicts(
            name, prefix, self._tenant_map() if tenants is None else tenants)]
        if prefix != "/":
            D, Tn, RP = self.m.Document, self.m.Tenant, self.m.RouterPrefix
            taken = (RP.select(RP.prefix, Tn.name, D.name).join(D).join(Tn)
                     .where((RP.prefix == prefix) | RP.prefix.startswith(prefix + "/"), Tn.name != name)
                     .order_by(RP.prefix).limit(5).tuples())
            errors += [f"tenant {name}: prefix: {prefix!r} contains {p!r}, served by document {t}/{n}"
                       for p, t, n in taken]
        if errors:
            raise ConfigError(errors[0], errors)

    # -- users -------------------------------------------------------------------
    def _user(self, row) -> r.User:
        Tn, Ms = self.m.Tenant, self.m.Membership
        names = tuple(n for (n,) in Tn.select(Tn.name).join(Ms).where(Ms.user == row.id).order_by(Tn.name).tuples())
        return r.User(id=row.id, name=row.name, role=row.role, active=bool(row.active), tenants=names,
                      created_at=_aware(row.created_at))

    def _user_row(self, name: str):
        row = self.m.User.get_or_none(self.m.User.name == name)
        if row is None:
            raise NotFound(f"user {name!r} does not exist")
        return row

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ConfigError(f"role: {role!r} is not one of {', '.join(ROLES)}")

    def _set_memberships(self, user_id: int, tenants: Iterable[str]) -> None:
        Ms = self.m.Membership
        ids = [self._tenant_row(t).id for t in dict.fromkeys(tenants)]
        Ms.delete().where(Ms.user == user_id).execute()
        if ids:
            Ms.insert_many([{"user": user_id, "tenant": t} for t in ids]).execute()

    def create_user(self, name: str, password: str, *, role: str = "member",
                    tenants: Iterable[str] = (), active: bool = True) -> r.User:
        """Create a user with an argon2-hashed password; ConflictError when the name is taken."""
        names.check_account("name", name)
        self._check_role(role)
        _check_password(password)
        tenants = list(tenants)
        password_hash = security.hash_password(password)  # slow on purpose: outside the transaction
        U = self.m.User

        def create():
            if U.get_or_none(U.name == name) is not None:
                raise ConflictError(f"user {name!r} already exists")
            row = U.create(name=name, password_hash=password_hash, role=role, active=active, created_at=_now())
            self._set_memberships(row.id, tenants)
            return self._user(row)

        try:
            return self._write(create, bump=bool(tenants))
        except pw.IntegrityError:
            raise ConflictError(f"user {name!r} already exists") from None

    def get_user(self, name: str) -> r.User:
        """Return a user or raise NotFound."""
        return self._read(lambda: self._user(self._user_row(name)))

    def list_users(self) -> list[r.User]:
        """All users, by name."""
        return self._read(lambda: [self._user(u) for u in self.m.User.select().order_by(self.m.User.name)])

    def update_user(self, name: str, *, role: str | None = None, active: bool | None = None,
                    tenants: Iterable[str] | None = None) -> r.User:
        """Change role, active flag or tenant memberships (bumps the revision: keys may change with them)."""
        if role is not None:
            self._check_role(role)
        tenants = list(tenants) if tenants is not None else None

        def update():
            row = self._user_row(name)
            if role is not None:
                row.role = role
            if active is not None:
                row.active = active
            row.save()
            if tenants is not None:
                self._set_memberships(row.id, tenants)
            return self._user(row)

        return self._write(update)

    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password (at least 8 characters)."""
        _check_password(password)
        password_hash = security.hash_password(password)

        def update():
            U = self.m.User
            if not U.update(password_hash=password_hash).where(U.name == name).execute():
                raise NotFound(f"user {name!r} does not exist")

        self._write(update, bump=False)

    def authenticate(self, name: str, password: str) -> r.User:
        """Return the active user whose password matches, else AuthError("invalid user name or password")."""
        row = self._read(lambda: self.m.User.get_or_none(self.m.User.name == name))
        ok = security.verify_password(row.password_hash if row else None, password or "")
        if not ok or not row.active:
            raise AuthError("invalid user name or password")
        if security.needs_rehash(row.password_hash):
            self.set_password(name, password)
        return self._read(lambda: self._user(row))

    def delete_user(self, name: str) -> None:
        """Delete a user with their memberships, API keys (so revoked) and chats."""
        def delete():
            row = self._user_row(name)
            m = self.m
            sessions = m.ChatSession.select(m.ChatSession.id).where(m.ChatSession.user == row.id)
            m.ChatMessage.delete().where(m.ChatMessage.session.in_(sessions)).execute()
            m.ChatSession.delete().where(m.ChatSession.user == row.id).execute()
            keys = [k for (k,) in m.ApiKey.select(m.ApiKey.id).where(m.ApiKey.user == row.id).tuples()]
            self._drop_secrets("user", [row.id])
            self._drop_secrets("key", keys)
            m.ApiKey.delete().where(m.ApiKey.user == row.id).execute()
            m.Membership.delete().where(m.Membership.user == row.id).execute()
            row.delete_instance()

        self._write(delete)

    # -- API keys ----------------------------------------------------------------
    def _key_query(self):
        K, U, Tn = self.m.ApiKey, self.m.User, self.m.Tenant
        return K.select(K, U.name, Tn.name).join(U, on=(K.user == U.id)).switch(K).join(Tn, on=(K.tenant == Tn.id))

    def _keys(self, query) -> list[r.ApiKey]:
        return [self._key(row, row.user.name, row.tenant.name) for row in query]

    @staticmethod
    def _key(row, user: str, tenant: str) -> r.ApiKey:
        return r.ApiKey(id=row.id, name=row.name, prefix=row.prefix, user=user, tenant=tenant,
                        servers=tuple(json.loads(row.servers or "[]")), tools=tuple(json.loads(row.tools or "[]")),
                        expires_at=_aware(row.expires_at), last_used_at=_aware(row.last_used_at),
                        revoked=bool(row.revoked), created_at=_aware(row.created_at), secret_hash=row.secret_hash)

    def _owner_may_use(self):
        """SQL condition: the key's owner is an admin or still a member of the key's tenant.

        Keys follow their owner's membership: leaving a tenant (or being demoted from admin without
        membership) ends every key the owner holds on it, at the gateway's next reload.
        """
        K, U, Ms = self.m.ApiKey, self.m.User, self.m.Membership
        member = Ms.select(Ms.id).where(Ms.user == K.user, Ms.tenant == K.tenant)
        return (U.role == "admin") | pw.fn.EXISTS(member)

    def _live_keys(self, now: datetime) -> tuple[r.ApiKey, ...]:
        K, U = self.m.ApiKey, self.m.User
        query = self._key_query().where(K.revoked == False, U.active == True,  # noqa: E712 - SQL expressions
                                        (K.expires_at.is_null()) | (K.expires_at > now),
                                        self._owner_may_use()).order_by(K.id)
        keys = []
        for row in query:
            try:
                keys.append(self._key(row, row.user.name, row.tenant.name))
            except (TypeError, ValueError, RecursionError):
                # A scope that cannot be read must neither widen to "everything" nor stop the load: leave it out.
                log.warning("API key %s left out: its stored scope cannot be read", row.id)
        return tuple(keys)

    def create_key(self, user: str, tenant: str, *, name: str = "", servers: Iterable[str] = (),
                   tools: Iterable[str] = (), expires_at: datetime | None = None) -> tuple[r.ApiKey, str]:
        """Create an API key for ``user`` on ``tenant``; return the record and the secret (stored hashed)."""
        if name:
            names.check_name("name", name)
        servers, tools = list(servers), list(tools)
        for field, values in (("servers", servers), ("tools", tools)):
            for i, value in enumerate(values):
                names.check_name(f"{field}[{i}]", value)
        secret = security.new_key_secret()

        def create():
            user_row, tenant_row = self._user_row(user), self._tenant_row(tenant)
            Ms = self.m.Membership
            if user_row.role != "admin" and Ms.get_or_none(Ms.user == user_row.id, Ms.tenant == tenant_row.id) is None:
                raise Forbidden(f"tenant: user {user!r} is not a member of tenant {tenant!r}")
            row = self.m.ApiKey.create(name=name or "", prefix=security.shown_prefix(secret),
                                       secret_hash=security.hash_secret(secret), user=user_row.id,
                                       tenant=tenant_row.id, servers=_dumps(servers), tools=_dumps(tools),
                                       expires_at=_naive(expires_at), revoked=False, created_at=_now())
            return self._key(row, user, tenant)

        return self._write(create), secret

    def list_keys(self, *, user: str | None = None, tenant: str | None = None) -> list[r.ApiKey]:
        """Keys, newest first, optionally for one user or tenant."""
        K, U, Tn = self.m.ApiKey, self.m.User, self.m.Tenant
        query = self._key_query()
        if user is not None:
            query = query.where(U.name == user)
        if tenant is not None:
            query = query.where(Tn.name == tenant)
        return self._read(lambda: self._keys(query.order_by(K.created_at.desc(), K.id.desc())))

    def get_key(self, key_id: int) -> r.ApiKey:
        """Return a key by id or raise NotFound."""
        def get():
            keys = self._keys(self._key_query().where(self.m.ApiKey.id == key_id))
            if not keys:
                raise NotFound(f"API key {key_id} does not exist")
            return keys[0]

        return self._read(get)

    def revoke_key(self, key_id: int) -> None:
        """Revoke a key (its secrets are deleted); the revision is bumped so gateways drop it within one poll."""
        def revoke():
            K = self.m.ApiKey
            if not K.update(revoked=True).where(K.id == key_id).execute():
                raise NotFound(f"API key {key_id} does not exist")
            self._drop_secrets("key", [key_id])

        self._write(revoke)

    def verify_key(self, secret: str) -> r.ApiKey:
        """Return the live key whose secret this is, else AuthError saying why."""
        if not isinstance(secret, str) or not secret.startswith(security.KEY_PREFIX):
            raise AuthError("invalid API key")
        K, U = self.m.ApiKey, self.m.User
        query = self._key_query().select_extend(U.active).where(K.secret_hash == security.hash_secret(secret))
        rows = self._read(lambda: list(query))
        if not rows:
            raise AuthError("invalid API key")
        key = self._key(rows[0], rows[0].user.name, rows[0].tenant.name)
        if key.revoked:
            raise AuthError(f"API key {key.prefix}… was revoked")
        if key.expires_at is not None and key.expires_at <= datetime.now(timezone.utc):
            raise AuthError(f"API key {key.prefix}… expired at {key.expires_at.isoformat()}")
        if not rows[0].user.active:
            raise AuthError(f"API key {key.prefix}… belongs to an inactive user")
        if not self._read(lambda: self._key_query().where(K.id == key.id, self._owner_may_use()).exists()):
            raise AuthError(f"API key {key.prefix}… belongs to a user who is no longer a member of its tenant")
        return key

    def touch_keys(self, used: dict[int, datetime]) -> None:
        """Record when keys were last used (no revision bump)."""
        if not used:
            return
        K = self.m.ApiKey

        def touch():
            for key_id, when in sorted(used.items()):
                when = _naive(when)
                K.update(last_used_at=when).where(
                    K.id == key_id, (K.last_used_at.is_null()) | (K.last_used_at < when)).execute()

        self._write(touch, bump=False)

    # -- secrets (sealed with the secrets_key: mcpgw_sdk/secrets.py) -------------
    def _drop_secrets(self, kind: str, ids: list[int]) -> None:
        """Delete the secrets of these owners (inside the caller's transaction)."""
        if ids:
            S = self.m.Secret
            S.delete().where(S.owner_kind == kind, S.owner_id.in_(ids)).execute()

    def _secret_owner(self, user: str | None, key_id: int | None, tenant: str | None) -> tuple[str, int, str]:
        """(kind, row id, shown owner) of exactly one of ``user``, ``key_id``, ``tenant``; NotFound when absent."""
        given = [(kind, value) for kind, value in (("user", user), ("key", key_id), ("tenant", tenant))
                 if value is not None]
        if len(given) != 1:
            raise ConfigError("owner: give exactly one of user, key_id, tenant")
        kind, value = given[0]
        if kind == "user":
            return kind, self._user_row(value).id, value
        if kind == "tenant":
            return kind, self._tenant_row(value).id, value
        K = self.m.ApiKey
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"key_id: must be an integer, got {type(value).__name__}")
        row = K.get_or_none(K.id == value) if -2**63 <= value < 2**63 else None
        if row is None or row.revoked:
            raise NotFound(f"API key {value} does not exist")
        return kind, row.id, str(value)

    def set_secret(self, name: str, value: str, *, user: str | None = None, key_id: int | None = None,
                   tenant: str | None = None, author: str | None = None) -> r.SecretInfo:
        """Seal and store a secret of one owner (replacing one of that name); see :meth:`Store.set_secret`."""
        from . import secrets

        secrets.check_secret(name, value)
        secrets.require_key()  # no secrets_key: fail before touching the database

        def put():
            kind, owner_id, shown = self._secret_owner(user, key_id, tenant)
            sealed = secrets.seal(f"{kind}:{owner_id}", name, value)
            S, now = self.m.Secret, _now()
            changed = S.update(sealed=sealed, updated_at=now, updated_by=author).where(
                S.owner_kind == kind, S.owner_id == owner_id, S.name == name).execute()
            if not changed:
                S.create(owner_kind=kind, owner_id=owner_id, name=name, sealed=sealed, updated_at=now,
                         updated_by=author)
            return r.SecretInfo(owner_kind=kind, owner=shown, name=name, updated_at=_aware(now), updated_by=author)

        return self._write(put, bump=False)

    def list_secrets(self, *, user: str | None = None, key_id: int | None = None,
                     tenant: str | None = None) -> list[r.SecretInfo]:
        """The names of one owner's secrets (never the values), by name."""
        def names_of():
            kind, owner_id, shown = self._secret_owner(user, key_id, tenant)
            S = self.m.Secret
            rows = S.select(S.name, S.updated_at, S.updated_by).where(
                S.owner_kind == kind, S.owner_id == owner_id).order_by(S.name)
            return [r.SecretInfo(owner_kind=kind, owner=shown, name=row.name, updated_at=_aware(row.updated_at),
                                 updated_by=row.updated_by) for row in rows]

        return self._read(names_of)

    def delete_secret(self, name: str, *, user: str | None = None, key_id: int | None = None,
                      tenant: str | None = None) -> None:
        """Delete one secret of one owner (NotFound when there is none of that name)."""
        names.check_name("name", name)

        def delete():
            kind, owner_id, _ = self._secret_owner(user, key_id, tenant)
            S = self.m.Secret
            if not S.delete().where(S.owner_kind == kind, S.owner_id == owner_id, S.name == name).execute():
                raise NotFound(f"secret {name!r} is not set")

        self._write(delete, bump=False)

    def sealed_secrets(self, *, user: str | None = None, key_id: int | None = None,
                       tenant: str | None = None) -> dict[str, Any]:
        """One owner's secrets, still sealed (:class:`mcpgw_sdk.secrets.Sealed` by name); empty when none or no owner."""
        from .secrets import Sealed

        def read():
            try:
                kind, owner_id, _ = self._secret_owner(user, key_id, tenant)
            except NotFound:
                return {}
            S = self.m.Secret
            rows = S.select(S.name, S.sealed).where(S.owner_kind == kind, S.owner_id == owner_id).tuples()
            return {name: Sealed(f"{kind}:{owner_id}", name, sealed) for name, sealed in rows}

        return self._read(read)

    # -- config documents -------------------------------------------------------
    @staticmethod
    def _document(row, tenant: str, content: dict | None = None) -> r.Document:
        return r.Document(tenant=tenant, name=row.name, content=content if content is not None else
                          json.loads(row.content), version=row.version, updated_at=_aware(row.updated_at),
                          updated_by=row.updated_by, deleted=bool(row.deleted))

    def _doc_row(self, tenant: str, name: str):
        D, Tn = self.m.Document, self.m.Tenant
        return D.select(D).join(Tn).where(Tn.name == tenant, D.name == name).first()

    def list_documents(self, *, tenant: str | None = None, include_deleted: bool = False) -> list[r.Document]:
        """Documents ordered by tenant, name."""
        D, Tn = self.m.Document, self.m.Tenant
        query = D.select(D, Tn).join(Tn).order_by(Tn.name, D.name)
        if tenant is not None:
            query = query.where(Tn.name == tenant)
        if not include_deleted:
            query = query.where(D.deleted == False)  # noqa: E712
        return self._read(lambda: [self._document(row, row.tenant.name) for row in query])

    def get_document(self, tenant: str, name: str, *, include_deleted: bool = False) -> r.Document:
        """Return a document or raise NotFound."""
        def get():
            row = self._doc_row(tenant, name)
            if row is None or (row.deleted and not include_deleted):
                raise NotFound(f"document {tenant}/{name} does not exist")
            return self._document(row, tenant)

        return self._read(get)

    @staticmethod
    def _flatten(problems: dict) -> list[str]:
        lines = []
        for (tenant, name), errors in sorted(problems.items()):
            for error in errors:
                lines.append(error if error.startswith(f"{tenant}/{name}") else f"{tenant}/{name}: {error}")
        return lines

    @staticmethod
    def _planned_prefix(tenant: str, content: dict) -> str:
        from . import documents

        if tenant == "default":
            return "/"  # the catch-all tenant: Unla documents live at /default/..., others at /gateway/...
        found = documents.prefixes(content)
        return _first_segment(found[0]) if found else "/" + tenant

    def _check_set(self, contents: list[dict]) -> None:
        """Cross-document validation of ``contents`` against the live documents they could clash with.

        Only documents whose router prefixes equal, contain or lie under one of
        ``contents``' prefixes can clash, so only those are read: a save costs the
        same with ten documents stored or ten thousand.
        """
        from . import documents

        D, Tn, RP = self.m.Document, self.m.Tenant, self.m.RouterPrefix
        keys = {documents.key(c) for c in contents}
        errors = self._prefix_owner_errors(contents, keys)
        if errors:
            raise ConfigError(errors[0], errors=errors)
        tenants = self._tenant_map()
        for content in contents:
            tenant = documents.key(content)[0]
            if tenant not in tenants:
                # created on the fly by this write: its prefix must not clash with another tenant's either
                planned = self._planned_prefix(tenant, content)
                self._check_tenant_prefix(tenant, planned, tenants)
                tenants[tenant] = planned
        mine = {p for c in contents for p in documents.prefixes(c)}
        others: list[dict] = []
        if mine:
            ancestors = {"/" + "/".join(p.strip("/").split("/")[:i]) for p in mine
                         for i in range(1, p.strip("/").count("/") + 1)}
            clauses = [RP.prefix.in_(sorted(mine | ancestors))]
            clauses += [RP.prefix.startswith(p.rstrip("/") + "/") for p in sorted(mine)]
            related: set[int] = set()
            # Flat ORs in chunks: one OR per prefix nested past SQLite's parser stack (~100 documents).
            for start in range(0, len(clauses), 50):
                clause = pw.NodeList(clauses[start:start + 50], glue=" OR ", parens=True)
                related.update(doc for (doc,) in RP.select(RP.document).where(clause).tuples())
            others = [json.loads(c) for c, t, n in D.select(D.content, Tn.name, D.name).join(Tn)
                      .where(D.id.in_(sorted(related)), D.deleted == False).tuples()  # noqa: E712
                      if (t, n) not in keys] if related else []
        problems = documents.validate_set(list(contents) + others, tenants)
        problems = {k: v for k, v in problems.items() if k in keys and v}
        if problems:
            raise ConfigError(f"{len(problems)} document(s) do not fit with the stored configuration",
                              errors=self._flatten(problems))

    def _prefix_owner_errors(self, contents: list[dict], exclude: set | frozenset = frozenset()) -> list[str]:
        """Errors for router prefixes of ``contents`` already served by another stored document."""
        from . import documents

        D, Tn, RP = self.m.Document, self.m.Tenant, self.m.RouterPrefix
        wanted = {p for c in contents for p in documents.prefixes(c)}
        if not wanted:
            return []
        owners = {p: (t, n) for p, t, n in RP.select(RP.prefix, Tn.name, D.name).join(D).join(Tn)
                  .where(RP.prefix.in_(sorted(wanted))).tuples()}
        errors = []
        for content in contents:
            key = documents.key(content)
            for i, p in enumerate(documents.prefixes(content)):
                owner = owners.get(p)
                if owner is not None and owner != key and owner not in exclude:
                    errors.append(f"{key[0]}/{key[1]}: routers[{i}].prefix: {p!r} is already served by document "
                                  f"{owner[0]}/{owner[1]}")
        return errors

    def _set_prefixes(self, doc_id: int, content: dict | None, *, fresh: bool = False) -> None:
        from . import documents

        RP = self.m.RouterPrefix
        if not fresh:
            RP.delete().where(RP.document == doc_id).execute()
        if content is None:
            return
        mine = documents.prefixes(content)
        if mine:
            RP.insert_many([{"prefix": p, "document": doc_id} for p in dict.fromkeys(mine)]).execute()

    def _ensure_tenant(self, tenant: str, content: dict):
        Tn = self.m.Tenant
        row = Tn.get_or_none(Tn.name == tenant)
        if row is None:
            Tn.insert(name=tenant, prefix=self._planned_prefix(tenant, content), description="") \
                .on_conflict_ignore().execute()
            row = Tn.get(Tn.name == tenant)
        return row

    def _store_version(self, row, *, action: str, content: dict | None, content_hash: str,
                       author: str | None, now: datetime, reverted_from: int | None = None) -> None:
        DV = self.m.DocumentVersion
        DV.create(document=row.id, version=row.version, action=action,
                  content=_dumps(content) if content is not None else None, content_hash=content_hash,
                  author=author, created_at=now, reverted_from=reverted_from)
        keep = max(1, int(settings.get("version_retention")))
        if row.version > keep:
            DV.delete().where(DV.document == row.id, DV.version <= row.version - keep).execute()

    def _put(self, content: dict, row, *, author: str | None, action: str, reverted_from: int | None = None,
             base_version: int | None = None, tenant_ids: dict[str, int] | None = None) -> r.Document:
        """Write ``content`` (validated) as the next version of ``row`` (None: a new document)."""
        from . import documents

        tenant, name = documents.key(content)
        D = self.m.Document
        now = _now()
        digest = documents.content_hash(content)
        text = _dumps(content)
        fresh = row is None
        if fresh:
            tenant_id = tenant_ids[tenant] if tenant_ids and tenant in tenant_ids else \
                self._ensure_tenant(tenant, content).id
            try:
                row = D.create(tenant=tenant_id, name=name, content=text, version=1, content_hash=digest,
                               deleted=False, updated_at=now, updated_by=author)
            except pw.IntegrityError:
                # Writers are serialised by the revision row lock, so this is a last line of defence.
                raise ConflictError(f"document {tenant}/{name} was created concurrently",
                                    base_version=base_version) from None
        else:
            expected = row.version
            changed = D.update(content=text, version=expected + 1, content_hash=digest, deleted=False,
                               updated_at=now, updated_by=author).where(D.id == row.id, D.version == expected).execute()
            if not changed:
                current = D.get_by_id(row.id)
                raise self._conflict(tenant, name, current, base_version if base_version is not None else expected)
            row.version, row.content, row.content_hash, row.deleted = expected + 1, text, digest, False
            row.updated_at, row.updated_by = now, author
        self._set_prefixes(row.id, content, fresh=fresh)
        self._store_version(row, action=action, content=content, content_hash=digest, author=author, now=now,
                            reverted_from=reverted_from)
        return self._document(row, tenant, content)

    @staticmethod
    def _conflict(tenant: str, name: str, current, base_version: int) -> ConflictError:
        who = current.updated_by or "someone else"
        state = "deleted" if current.deleted else "changed"
        return ConflictError(f"document {tenant}/{name} was {state} by {who} (now version {current.version}); "
                             f"you started from version {base_version}",
                             base_version=base_version, current_version=current.version)

    def _wrap_prefix_race(self, fn: Callable[[], T], contents: list[dict]) -> T:
        """Turn a router_prefix unique violation (a concurrent writer won) into the ConfigError naming it."""
        try:
            return fn()
        except pw.IntegrityError as exc:
            errors = self._read(lambda: self._prefix_owner_errors(contents))
            if errors:
                raise ConfigError(errors[0], errors=errors) from None
            raise ConflictError(f"a concurrent change won: {exc}") from None

    def create_document(self, content: dict[str, Any], *, author: str | None = None,
                        actor: r.User | None = None) -> r.Document:
        """Validate and store a new document; ConflictError when it exists, ConfigError when invalid."""
        from . import documents

        norm = documents.validate(content)
        policy.check_save([norm], actor=actor)
        tenant, name = documents.key(norm)

        def create():
            row = self._doc_row(tenant, name)
            if row is not None and not row.deleted:
                raise ConflictError(f"document {tenant}/{name} already exists (version {row.version})",
                                    current_version=row.version)
            self._check_set([norm])
            return self._put(norm, row, author=author, action="create")

        return self._wrap_prefix_race(lambda: self._write(create), [norm])

    def save_document(self, content: dict[str, Any], *, author: str | None = None,
                      base_version: int | None = None, actor: r.User | None = None) -> r.Document:
        """Create or update a document; with ``base_version`` only if nobody changed it meanwhile.

        ``base_version=0`` means "create; it must not exist". Saving the content
        already stored writes no version and does not bump the revision.
        """
        from . import documents

        norm = documents.validate(content)
        policy.check_save([norm], actor=actor)
        tenant, name = documents.key(norm)
        digest = documents.content_hash(norm)

        def save():
            row = self._doc_row(tenant, name)
            if row is None:
                if base_version:
                    raise ConflictError(f"document {tenant}/{name} does not exist (any more); you started from "
                                        f"version {base_version}", base_version=base_version, current_version=None)
                self._check_set([norm])
                return self._put(norm, None, author=author, action="create", base_version=base_version)
            if base_version is not None and base_version != row.version and not (row.deleted and base_version == 0):
                raise self._conflict(tenant, name, row, base_version)
            if row.deleted:
                self._check_set([norm])
                return self._put(norm, row, author=author, action="create", base_version=base_version)
            if row.content_hash == digest:
                raise _NoChange(self._document(row, tenant))
            self._check_set([norm])
            return self._put(norm, row, author=author, action="update", base_version=base_version)

        return self._wrap_prefix_race(lambda: self._write(save), [norm])

    def delete_document(self, tenant: str, name: str, *, author: str | None = None,
                        base_version: int | None = None) -> r.Version:
        """Soft-delete a document: a ``delete`` version keeps it restorable; its prefixes are freed."""
        D = self.m.Document

        def delete():
            row = self._doc_row(tenant, name)
            if row is None or row.deleted:
                raise NotFound(f"document {tenant}/{name} does not exist")
            if base_version is not None and base_version != row.version:
                raise self._conflict(tenant, name, row, base_version)
            now = _now()
            if not D.update(deleted=True, version=row.version + 1, updated_at=now, updated_by=author) \
                    .where(D.id == row.id, D.version == row.version).execute():
                raise self._conflict(tenant, name, D.get_by_id(row.id), row.version)
            row.version += 1
            self._set_prefixes(row.id, None)
            self._store_version(row, action="delete", content=None, content_hash="", author=author, now=now)
            return r.Version(tenant=tenant, name=name, version=row.version, action="delete", content=None,
                             content_hash="", author=author, created_at=_aware(now))

        return self._write(delete)

    @staticmethod
    def _version(row, tenant: str, name: str) -> r.Version:
        return r.Version(tenant=tenant, name=name, version=row.version, action=row.action,
                         content=json.loads(row.content) if row.content is not None else None,
                         content_hash=row.content_hash, author=row.author, created_at=_aware(row.created_at),
                         reverted_from=row.reverted_from)

    def list_versions(self, tenant: str, name: str) -> list[r.Version]:
        """The document's history, newest first (deleted documents too)."""
        DV = self.m.DocumentVersion

        def versions():
            row = self._doc_row(tenant, name)
            if row is None:
                raise NotFound(f"document {tenant}/{name} does not exist")
            return [self._version(v, tenant, name) for v in
                    DV.select().where(DV.document == row.id).order_by(DV.version.desc())]

        return self._read(versions)

    def _version_row(self, tenant: str, name: str, version: int):
        DV = self.m.DocumentVersion
        row = self._doc_row(tenant, name)
        found = None if row is None else DV.get_or_none(DV.document == row.id, DV.version == version)
        if found is None:
            raise NotFound(f"document {tenant}/{name} has no version {version}")
        return row, found

    def get_version(self, tenant: str, name: str, version: int) -> r.Version:
        """One version or NotFound."""
        return self._read(lambda: self._version(self._version_row(tenant, name, version)[1], tenant, name))

    def diff_versions(self, tenant: str, name: str, a: int, b: int) -> str:
        """A unified diff of the YAML of versions ``a`` and ``b`` (headers ``tenant/name@vA``/``@vB``)."""
        from . import documents

        va, vb = self.get_version(tenant, name, a), self.get_version(tenant, name, b)
        text_a = documents.to_yaml(va.content) if va.content is not None else ""
        text_b = documents.to_yaml(vb.content) if vb.content is not None else ""
        return "".join(unified_diff(text_a.splitlines(keepends=True), text_b.splitlines(keepends=True),
                                    fromfile=f"{tenant}/{name}@v{a}", tofile=f"{tenant}/{name}@v{b}"))

    def rollback(self, tenant: str, name: str, version: int, *, author: str | None = None,
                 actor: r.User | None = None) -> r.Document:
        """Restore ``version``'s content as a new ``revert`` version (un-deletes a deleted document)."""
        from . import documents

        old = self.get_version(tenant, name, version)
        if old.content is None:
            raise ConfigError(f"{tenant}/{name}: version {version} is a deletion; choose a version with content")
        norm = documents.validate(old.content)
        policy.check_save([norm], actor=actor)

        def restore():
            row = self._doc_row(tenant, name)
            if not row.deleted and row.content_hash == documents.content_hash(norm):
                raise _NoChange(self._document(row, tenant))
            self._check_set([norm])
            return self._put(norm, row, author=author, action="revert", reverted_from=version)

        return self._wrap_prefix_race(lambda: self._write(restore), [norm])

    def import_documents(self, contents: list[dict[str, Any]], *, author: str | None = None,
                         actor: r.User | None = None) -> list[r.Document]:
        """Save several documents in one transaction: all saved, or none (ConfigError naming the culprits)."""
        from . import documents

        norms, errors, seen = [], [], {}
        for i, content in enumerate(contents):
            try:
                norm = documents.validate(content)
            except ConfigError as exc:
                errors.extend(exc.errors)
                continue
            key = documents.key(norm)
            if key in seen:
                errors.append(f"{key[0]}/{key[1]}: appears twice in the import (documents {seen[key] + 1} "
                              f"and {i + 1})")
            seen[key] = i
            norms.append(norm)
        if errors:
            raise ConfigError(f"import refused, nothing was saved: {len(errors)} problem(s)", errors=errors)
        policy.check_save(norms, actor=actor)

        def run():
            self._check_set(norms)
            D, Tn, RP = self.m.Document, self.m.Tenant, self.m.RouterPrefix
            keys = [documents.key(n) for n in norms]
            existing = {(row.tenant.name, row.name): row for row in D.select(D, Tn).join(Tn)
                        .where(Tn.name.in_({t for t, _ in keys}), D.name.in_({n for _, n in keys}))}
            rows = {k: existing.get(k) for k in keys}
            tenant_ids = {}
            for norm in norms:
                tenant = documents.key(norm)[0]
                if tenant not in tenant_ids:
                    tenant_ids[tenant] = self._ensure_tenant(tenant, norm).id
            # Free the imported documents' own prefixes first, so documents may swap prefixes within one import.
            ids = [row.id for row in rows.values() if row is not None]
            if ids:
                RP.delete().where(RP.document.in_(ids)).execute()
            out, changed = [], False
            for norm in norms:
                key = documents.key(norm)
                row = rows[key]
                if row is not None and not row.deleted and row.content_hash == documents.content_hash(norm):
                    self._set_prefixes(row.id, norm)
                    out.append(self._document(row, key[0], norm))
                    continue
                action = "update" if row is not None and not row.deleted else "create"
                out.append(self._put(norm, row, author=author, action=action, tenant_ids=tenant_ids))
                changed = True
            if not changed:
                raise _NoChange(out)
            return out

        return self._wrap_prefix_race(lambda: self._write(run), norms)

    # -- chat --------------------------------------------------------------------
    @staticmethod
    def _chat(row, user: str) -> r.ChatSession:
        return r.ChatSession(id=row.id, user=user, title=row.title, prefix=row.prefix,
                             settings=json.loads(row.settings or "{}"), created_at=_aware(row.created_at),
                             updated_at=_aware(row.updated_at))

    def _chat_row(self, chat_id: str):
        CS, U = self.m.ChatSession, self.m.User
        row = CS.select(CS, U.name).join(U).where(CS.id == chat_id).first()
        if row is None:
            raise NotFound(f"chat {chat_id!r} does not exist")
        return row

    def create_chat(self, user: str, *, title: str = "New chat", prefix: str = "",
                    settings: dict[str, Any] | None = None) -> r.ChatSession:
        """Start a chat session for ``user``."""
        def create():
            user_row = self._user_row(user)
            now = _now()
            row = self.m.ChatSession.create(id=uuid.uuid4().hex, user=user_row.id, title=title[:200], prefix=prefix,
                                            settings=_dumps(settings or {}), created_at=now, updated_at=now)
            return self._chat(row, user)

        return self._write(create, bump=False)

    def list_chats(self, *, user: str | None = None) -> list[r.ChatSession]:
        """Chat sessions, most recently updated first."""
        CS, U = self.m.ChatSession, self.m.User
        query = CS.select(CS, U.name).join(U).order_by(CS.updated_at.desc(), CS.id)
        if user is not None:
            query = query.where(U.name == user)
        return self._read(lambda: [self._chat(row, row.user.name) for row in query])

    def get_chat(self, chat_id: str) -> r.ChatSession:
        """One chat session or NotFound."""
        return self._read(lambda: (lambda row: self._chat(row, row.user.name))(self._chat_row(chat_id)))

    def update_chat(self, chat_id: str, *, title: str | None = None,
                    settings: dict[str, Any] | None = None) -> r.ChatSession:
        """Rename a chat or change its settings."""
        def update():
            CS = self.m.ChatSession
            row = self._chat_row(chat_id)
            changes = {CS.updated_at: _now()}
            if title is not None:
                changes[CS.title] = title[:200]
            if settings is not None:
                changes[CS.settings] = _dumps(settings)
            CS.update(changes).where(CS.id == row.id).execute()
            return self._chat(self._chat_row(chat_id), row.user.name)

        return self._write(update, bump=False)

    def delete_chat(self, chat_id: str) -> None:
        """Delete a chat session and its messages."""
        def delete():
            row = self._chat_row(chat_id)
            self.m.ChatMessage.delete().where(self.m.ChatMessage.session == row.id).execute()
            self.m.ChatSession.delete().where(self.m.ChatSession.id == row.id).execute()

        self._write(delete, bump=False)

    def add_chat_message(self, chat_id: str, role: str, content: dict[str, Any]) -> r.ChatMessage:
        """Append a message (``role`` system, user, assistant or tool; ``content`` in OpenAI chat format)."""
        if role not in CHAT_ROLES:
            raise ConfigError(f"role: {role!r} is not one of {', '.join(CHAT_ROLES)}")
        CM, CS = self.m.ChatMessage, self.m.ChatSession

        def add():
            row = self._chat_row(chat_id)
            seq = (CM.select(pw.fn.MAX(CM.seq)).where(CM.session == row.id).scalar() or 0) + 1
            now = _now()
            CM.create(session=row.id, seq=seq, role=role, content=_dumps(content), created_at=now)
            CS.update(updated_at=now).where(CS.id == row.id).execute()
            return r.ChatMessage(session_id=chat_id, seq=seq, role=role, content=content, created_at=_aware(now))

        for attempt in range(5):
            try:
                return self._write(add, bump=False)
            except pw.IntegrityError:
                if attempt == 4:
                    raise ConflictError(f"chat {chat_id!r}: too many concurrent messages") from None
        raise AssertionError("unreachable")

    def chat_messages(self, chat_id: str) -> list[r.ChatMessage]:
        """A chat's messages in order (NotFound when the chat does not exist)."""
        CM = self.m.ChatMessage

        def messages():
            row = self._chat_row(chat_id)
            return [r.ChatMessage(session_id=chat_id, seq=m.seq, role=m.role, content=json.loads(m.content),
                                  created_at=_aware(m.created_at))
                    for m in CM.select().where(CM.session == row.id).order_by(CM.seq)]

        return self._read(messages)

    # -- audit -------------------------------------------------------------------
    def write_audit(self, items: Iterable[r.AuditRecord]) -> None:
        """Insert audit records in one transaction (in chunks of 500 rows)."""
        rows = [(_naive(i.ts), i.tenant or "", i.prefix or "", i.server or "", i.tool or "", i.outcome,
                 float(i.latency_ms or 0.0), i.user, i.key_id, i.session_id, i.error[:4000] if i.error else i.error)
                for i in items]
        if not rows:
            return
        A = self.m.Audit
        fields = [A.ts, A.tenant, A.prefix, A.server, A.tool, A.outcome, A.latency_ms, A.user, A.key_id,
                  A.session_id, A.error]

        def insert():
            if self.info.kind == "postgresql":  # psycopg2's executemany is one round trip per row
                for start in range(0, len(rows), 500):
                    A.insert_many(rows[start:start + 500], fields=fields).execute()
                return
            # The gateway writes these while serving calls: building SQL per value in Python cost
            # ~0.1 ms a row; the driver's executemany of one prepared INSERT costs a few µs.
            sql = A.insert_many([rows[0]], fields=fields).sql()[0]
            cursor = self.db.cursor()
            for start in range(0, len(rows), 500):
                cursor.executemany(sql, rows[start:start + 500])

        self._write(insert, bump=False)

    def query_audit(self, *, since: datetime | None = None, until: datetime | None = None,
                    tenant: str | None = None, prefix: str | None = None, server: str | None = None,
                    tool: str | None = None, user: str | None = None, outcome: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[r.AuditRecord]:
        """Audit records, newest first, filtered and paginated."""
        A = self.m.Audit
        query = A.select()
        if since is not None:
            query = query.where(A.ts >= _naive(since))
        if until is not None:
            query = query.where(A.ts < _naive(until))
        for column, value in ((A.tenant, tenant), (A.prefix, prefix), (A.server, server), (A.tool, tool),
                              (A.user, user), (A.outcome, outcome)):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(A.ts.desc(), A.id.desc()).limit(max(0, int(limit))).offset(max(0, int(offset)))
        return self._read(lambda: [
            r.AuditRecord(ts=_aware(a.ts), tenant=a.tenant, prefix=a.prefix, server=a.server, tool=a.tool,
                          outcome=a.outcome, latency_ms=a.latency_ms, user=a.user, key_id=a.key_id,
                          session_id=a.session_id, error=a.error, id=a.id) for a in query])

    # -- small named values ----------------------------------------------------------
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
