"""The peewee models of the SQL store.

Models are defined per database by :func:`define`, so several stores (SQLite in
a test, PostgreSQL in another) can live in one process without sharing a global
binding. Callers above the store never see these classes; they get the records
of :mod:`mcpgw_sdk.records`.

JSON is kept in TEXT columns (portable across SQLite, PostgreSQL and MySQL);
times are naive UTC ``DateTimeField`` values.

>>> import peewee
>>> m = define(peewee.SqliteDatabase(":memory:"))
>>> [model._meta.table_name for model in m.ALL][:3]
['tenant', 'user', 'membership']
"""

from __future__ import annotations

from types import SimpleNamespace

import peewee as pw

TABLES = ("tenant", "user", "membership", "api_key", "document", "document_version", "router_prefix",
          "config_revision", "chat_session", "chat_message", "audit", "meta", "schema_migration", "secret")


def define(db: pw.Database) -> SimpleNamespace:
    """Model classes bound to ``db``; attributes named after the classes, plus ``ALL`` in creation order."""

    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Tenant(Base):
        name = pw.CharField(max_length=100, unique=True)
        prefix = pw.CharField(max_length=255)
        description = pw.TextField(default="")

    class User(Base):
        name = pw.CharField(max_length=100, unique=True)
        password_hash = pw.CharField(max_length=255)
        role = pw.CharField(max_length=16)
        active = pw.BooleanField(default=True)
        created_at = pw.DateTimeField()

    class Membership(Base):
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        tenant = pw.ForeignKeyField(Tenant, on_delete="CASCADE")

        class Meta:
            indexes = ((("user", "tenant"), True),)

    class ApiKey(Base):
        name = pw.CharField(max_length=200, default="")
        prefix = pw.CharField(max_length=16)
        secret_hash = pw.CharField(max_length=64, unique=True)
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        tenant = pw.ForeignKeyField(Tenant, on_delete="CASCADE")
        servers = pw.TextField(default="[]")
        tools = pw.TextField(default="[]")
        expires_at = pw.DateTimeField(null=True)
        last_used_at = pw.DateTimeField(null=True)
        revoked = pw.BooleanField(default=False)
        created_at = pw.DateTimeField()

    class Document(Base):
        tenant = pw.ForeignKeyField(Tenant, on_delete="CASCADE")
        name = pw.CharField(max_length=200)
        content = pw.TextField()
        version = pw.IntegerField()
        content_hash = pw.CharField(max_length=64)
        deleted = pw.BooleanField(default=False)
        updated_at = pw.DateTimeField()
        updated_by = pw.CharField(max_length=100, null=True)
        #: ``documents.validated_mark(content)`` when the validator accepted it (migration ``0003_checked``).
        checked = pw.CharField(max_length=64, null=True)

        class Meta:
            indexes = ((("tenant", "name"), True),)

    class DocumentVersion(Base):
        document = pw.ForeignKeyField(Document, on_delete="CASCADE")
        version = pw.IntegerField()
        action = pw.CharField(max_length=10)
        content = pw.TextField(null=True)
        content_hash = pw.CharField(max_length=64)
        author = pw.CharField(max_length=100, null=True)
        created_at = pw.DateTimeField()
        reverted_from = pw.IntegerField(null=True)

        class Meta:
            indexes = ((("document", "version"), True),)

    class RouterPrefix(Base):
        prefix = pw.CharField(max_length=255, unique=True)
        document = pw.ForeignKeyField(Document, on_delete="CASCADE")

    class ConfigRevision(Base):
        id = pw.IntegerField(primary_key=True)
        value = pw.BigIntegerField(default=0)

    class ChatSession(Base):
        id = pw.CharField(max_length=32, primary_key=True)
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        title = pw.CharField(max_length=200)
        prefix = pw.CharField(max_length=255, default="")
        settings = pw.TextField(default="{}")
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField(index=True)

    class ChatMessage(Base):
        session = pw.ForeignKeyField(ChatSession, on_delete="CASCADE")
        seq = pw.IntegerField()
        role = pw.CharField(max_length=20)
        content = pw.TextField()
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("session", "seq"), True),)

    class Audit(Base):
        ts = pw.DateTimeField(index=True)
        tenant = pw.CharField(max_length=100, default="")
        prefix = pw.CharField(max_length=255, default="")
        server = pw.CharField(max_length=200, default="")
        tool = pw.CharField(max_length=200, default="")
        outcome = pw.CharField(max_length=16)
        latency_ms = pw.FloatField(default=0.0)
        user = pw.CharField(max_length=100, null=True)
        key_id = pw.IntegerField(null=True)
        session_id = pw.CharField(max_length=100, null=True)
        error = pw.TextField(null=True)

    class StoredValue(Base):
        """Small named values other parts keep in the database (e.g. a generated signing secret)."""

        key = pw.CharField(max_length=100, primary_key=True)
        value = pw.TextField()

        class Meta:
            table_name = "meta"

    class SchemaMigration(Base):
        name = pw.CharField(max_length=100, primary_key=True)
        applied_at = pw.DateTimeField()

    class Secret(Base):
        """A per-user (or per-key, per-tenant) secret, sealed with the ``secrets_key`` (mcpgw_sdk.secrets).

        ``owner_kind`` is user, key or tenant and ``owner_id`` that row's id: not a foreign key, as
        it points into one of three tables; the store deletes a secret with its owner.
        """

        owner_kind = pw.CharField(max_length=8)
        owner_id = pw.IntegerField()
        name = pw.CharField(max_length=100)
        sealed = pw.TextField()
        updated_at = pw.DateTimeField()
        updated_by = pw.CharField(max_length=100, null=True)

        class Meta:
            indexes = ((("owner_kind", "owner_id", "name"), True),)

    ns = SimpleNamespace(Tenant=Tenant, User=User, Membership=Membership, ApiKey=ApiKey, Document=Document,
                         DocumentVersion=DocumentVersion, RouterPrefix=RouterPrefix, ConfigRevision=ConfigRevision,
                         ChatSession=ChatSession, ChatMessage=ChatMessage, Audit=Audit, StoredValue=StoredValue,
                         SchemaMigration=SchemaMigration, Secret=Secret)
    #: The tables of ``0001_initial`` (later migrations create theirs: see mcpgw_sdk.migrations).
    ns.INITIAL = [getattr(ns, name) for name in ("Tenant", "User", "Membership", "ApiKey", "Document",
                                                  "DocumentVersion", "RouterPrefix", "ConfigRevision", "ChatSession",
                                                  "ChatMessage", "Audit", "StoredValue", "SchemaMigration")]
    ns.ALL = [*ns.INITIAL, Secret]
    return ns
