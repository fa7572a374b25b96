"""Schema migrations: an ordered list of named functions, applied once each and recorded.

``mcpgw db upgrade`` (and :meth:`SqlStore.upgrade`) applies the pending ones, each
in its own transaction, and records it in ``schema_migration``. A fresh, empty
database counts as behind: it needs every migration, from ``0001_initial`` on.

To change the schema, append a function here (never edit an applied one) and
register it in :data:`MIGRATIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from types import SimpleNamespace

import peewee as pw


def _initial(db: pw.Database, m: SimpleNamespace) -> None:
    """Create the first tables and the revision row."""
    db.create_tables(m.INITIAL, safe=True)
    m.ConfigRevision.insert(id=1, value=1).on_conflict_ignore().execute()


def _secrets(db: pw.Database, m: SimpleNamespace) -> None:
    """Create ``secret``: per-user, per-key and per-tenant secrets, sealed (docs/credentials.md)."""
    db.create_tables([m.Secret], safe=True)


def _checked(db: pw.Database, m: SimpleNamespace) -> None:
    """Add ``document.checked``: the mark that the validator accepted the stored content (no re-check on load).

    ``0001_initial`` creates ``document`` from today's model, which has the column already: add it only when absent.
    """
    from playhouse.migrate import SchemaMigrator, migrate

    table = m.Document._meta.table_name
    if "checked" not in {column.name for column in db.get_columns(table)}:
        migrate(SchemaMigrator.from_database(db).add_column(table, "checked", pw.CharField(max_length=64, null=True)))


#: Every migration, in the order they apply.
MIGRATIONS: list[tuple[str, Callable[[pw.Database, SimpleNamespace], None]]] = [
    ("0001_initial", _initial),
    ("0002_secrets", _secrets),
    ("0003_checked", _checked),
]


def applied(db: pw.Database, m: SimpleNamespace) -> set[str]:
    """Names of the migrations recorded in the database (empty when it has no schema yet)."""
    if not db.table_exists(m.SchemaMigration._meta.table_name):
        return set()
    return {name for (name,) in m.SchemaMigration.select(m.SchemaMigration.name).tuples()}


def status(db: pw.Database, m: SimpleNamespace) -> list[tuple[str, bool]]:
    """Every known migration with whether it is applied, in order."""
    done = applied(db, m)
    return [(name, name in done) for name, _ in MIGRATIONS]


def pending(db: pw.Database, m: SimpleNamespace) -> list[str]:
    """Names of the migrations not yet applied, in order."""
    return [name for name, ok in status(db, m) if not ok]


class _Lock:
    """Serialise concurrent upgrades (several gunicorn workers starting at once).

    PostgreSQL and MySQL take a named server lock for the duration; SQLite
    relies on ``BEGIN IMMEDIATE`` in each migration's transaction.
    """

    def __init__(self, db: pw.Database):
        self.db = db

    def __enter__(self):
        if isinstance(self.db, pw.PostgresqlDatabase):
            self.db.execute_sql("SELECT pg_advisory_lock(%s)", (0x6D637067,))
        elif isinstance(self.db, pw.MySQLDatabase):
            self.db.execute_sql("SELECT GET_LOCK(%s, 60)", ("mcpgw_migrate",))
        return self

    def __exit__(self, *exc):
        if isinstance(self.db, pw.PostgresqlDatabase):
            self.db.execute_sql("SELECT pg_advisory_unlock(%s)", (0x6D637067,))
        elif isinstance(self.db, pw.MySQLDatabase):
            self.db.execute_sql("SELECT RELEASE_LOCK(%s)", ("mcpgw_migrate",))


def upgrade(db: pw.Database, m: SimpleNamespace) -> list[str]:
    """Apply pending migrations, one transaction each; return the names applied.

    Needs an open connection on ``db``. MySQL commits DDL implicitly, so there
    a failed migration may leave part of its tables; re-running is safe because
    tables are created with ``IF NOT EXISTS``.
    """
    done: list[str] = []
    begin = ("IMMEDIATE",) if isinstance(db, pw.SqliteDatabase) else ()
    with _Lock(db):
        db.create_tables([m.SchemaMigration], safe=True)
        already = applied(db, m)
        for name, func in MIGRATIONS:
            if name in already:
                continue
            with db.atomic(*begin):
                # Re-checked inside the transaction: on SQLite, BEGIN IMMEDIATE is the only lock.
                if m.SchemaMigration.get_or_none(m.SchemaMigration.name == name) is not None:
                    continue
                func(db, m)
                m.SchemaMigration.insert(name=name, applied_at=datetime.now(timezone.utc).replace(tzinfo=None)) \
                    .on_conflict_ignore().execute()
            done.append(name)
    return done
