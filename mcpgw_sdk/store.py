"""The storage interfaces every part of mcpgw talks to, one per concern.

- :class:`ConfigStore`: the revision, documents and their versions, tenants and API
  keys: everything the gateway reads. Every store has this part.
- :class:`AccountStore`: users, their passwords and the sealed per-owner secrets.
- :class:`ActivityStore`: chat sessions and the audit trail.
- :class:`ValueStore`: small named values (the API's and the gateway's shared state).
- :class:`Store`: all four, as :class:`~mcpgw_sdk.sqlstore.SqlStore` (peewee on
  SQLite, PostgreSQL, MySQL/MariaDB) implements them.

:class:`~mcpgw_sdk.yamlstore.YamlStore` (a read-only directory of documents) is a
:class:`ConfigStore` only: a caller that needs another part checks for it with
``isinstance`` (:func:`require_part` raises the :class:`~mcpgw_sdk.errors.ReadOnlyError`
users know). :func:`~mcpgw_sdk.opening.open_store` opens either from a URL. Methods
return the immutable records of :mod:`mcpgw_sdk.records`; errors are those of
:mod:`mcpgw_sdk.errors`.

Every config write (documents, tenants, API keys) bumps one revision counter in
the same transaction, whatever the writer; :meth:`ConfigStore.revision` reads it
with one primary-key query, which is what the gateway polls.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from . import records as r
from .errors import ReadOnlyError

P = TypeVar("P")


class ConfigStore(abc.ABC):
    """The config part: what the gateway reads. Obtain a store with :func:`mcpgw_sdk.open_store`."""

    url: str  #: the URL it was opened with, password masked
    read_only: bool = False

    # -- lifecycle ---------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Close connections."""

    @abc.abstractmethod
    def upgrade(self) -> list[str]:
        """Apply pending schema migrations; return the names applied (empty when current)."""

    @abc.abstractmethod
    def migration_status(self) -> list[tuple[str, bool]]:
        """Every known migration with whether it is applied, in order."""

    @abc.abstractmethod
    def check_schema(self) -> None:
        """Raise :class:`~mcpgw_sdk.errors.MigrationRequired` naming ``mcpgw db upgrade --db URL`` when behind."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`~mcpgw_sdk.errors.StorageError` when the database cannot be reached."""

    # -- revision and bulk load (the gateway's two calls) ------------------
    @abc.abstractmethod
    def revision(self) -> int:
        """The config revision counter (one primary-key query)."""

    @abc.abstractmethod
    def load_config(self) -> r.ConfigSet:
        """Revision, live documents, tenants and non-revoked keys, read in one transaction."""

    # -- tenants -----------------------------------------------------------
    @abc.abstractmethod
    def create_tenant(self, name: str, *, prefix: str | None = None, description: str = "") -> r.Tenant:
        """Create a tenant (prefix defaults to ``/name``). ConflictError when it exists."""

    @abc.abstractmethod
    def get_tenant(self, name: str) -> r.Tenant:
        """Return a tenant or raise NotFound."""

    @abc.abstractmethod
    def list_tenants(self) -> list[r.Tenant]:
        """All tenants, by name."""

    @abc.abstractmethod
    def update_tenant(self, name: str, *, prefix: str | None = None, description: str | None = None) -> r.Tenant:
        """Change a tenant's prefix or description (prefix change is validated against its documents)."""

    @abc.abstractmethod
    def delete_tenant(self, name: str) -> None:
        """Delete a tenant that has no live documents (ConflictError otherwise)."""

    # -- API keys ----------------------------------------------------------
    @abc.abstractmethod
    def create_key(self, user: str, tenant: str, *, name: str = "", servers: Iterable[str] = (),
                   tools: Iterable[str] = (), expires_at: datetime | None = None) -> tuple[r.ApiKey, str]:
        """Create an API key; return the stored record and the secret (shown once, stored hashed)."""

    @abc.abstractmethod
    def list_keys(self, *, user: str | None = None, tenant: str | None = None) -> list[r.ApiKey]:
        """Keys, newest first, optionally for one user or tenant."""

    @abc.abstractmethod
    def get_key(self, key_id: int) -> r.ApiKey:
        """Return a key by id or raise NotFound."""

    @abc.abstractmethod
    def revoke_key(self, key_id: int) -> None:
        """Revoke a key (bumps the revision so gateways drop it within one poll)."""

    @abc.abstractmethod
    def verify_key(self, secret: str) -> r.ApiKey:
        """Return the live key whose secret this is, else raise AuthError."""

    @abc.abstractmethod
    def touch_keys(self, used: dict[int, datetime]) -> None:
        """Record last use of keys (batched by the gateway; does not bump the revision)."""

    # -- config documents and versions -------------------------------------
    @abc.abstractmethod
    def list_documents(self, *, tenant: str | None = None, include_deleted: bool = False) -> list[r.Document]:
        """Documents ordered by tenant, name."""

    @abc.abstractmethod
    def get_document(self, tenant: str, name: str, *, include_deleted: bool = False) -> r.Document:
        """Return a document or raise NotFound."""

    @abc.abstractmethod
    def create_document(self, content: dict[str, Any], *, author: str | None = None,
                        actor: r.User | None = None) -> r.Document:
        """Validate and store a new document (version 1, or the next version when it was deleted).

        ConflictError when a live document with that (tenant, name) exists;
        ConfigError (every problem listed) when validation fails. ``actor`` is the
        user saving through the API or console (``None``: code on the host, the CLI
        or SDK); Forbidden, before anything is written, when
        :func:`mcpgw_sdk.policy.check_save` refuses them the content (every write
        method below takes and checks ``actor`` the same way).
        """

    @abc.abstractmethod
    def save_document(self, content: dict[str, Any], *, author: str | None = None,
                      base_version: int | None = None, actor: r.User | None = None) -> r.Document:
        """Create or update a document. With ``base_version``, ConflictError unless it is still current.

        A save whose content hash equals the current one writes no version and
        does not bump the revision.
        """

    @abc.abstractmethod
    def delete_document(self, tenant: str, name: str, *, author: str | None = None,
                        base_version: int | None = None) -> r.Version:
        """Delete a document (a ``delete`` version keeps it restorable)."""

    @abc.abstractmethod
    def list_versions(self, tenant: str, name: str) -> list[r.Version]:
        """The document's history, newest first (deleted documents too)."""

    @abc.abstractmethod
    def get_version(self, tenant: str, name: str, version: int) -> r.Version:
        """One version or NotFound."""

    @abc.abstractmethod
    def diff_versions(self, tenant: str, name: str, a: int, b: int) -> str:
        """A unified diff of the YAML of versions ``a`` and ``b``."""

    @abc.abstractmethod
    def rollback(self, tenant: str, name: str, version: int, *, author: str | None = None,
                 actor: r.User | None = None) -> r.Document:
        """Restore ``version``'s content as a new ``revert`` version (works for deleted documents)."""

    @abc.abstractmethod
    def import_documents(self, contents: list[dict[str, Any]], *, author: str | None = None,
                         actor: r.User | None = None) -> list[r.Document]:
        """Save several documents in one transaction: all or nothing."""


class AccountStore(abc.ABC):
    """The accounts part: users and their passwords, and the sealed per-owner secrets."""

    # -- users -------------------------------------------------------------
    @abc.abstractmethod
    def create_user(self, name: str, password: str, *, role: str = "member",
                    tenants: Iterable[str] = (), active: bool = True) -> r.User:
        """Create a user with a hashed password. ConflictError when the name is taken."""

    @abc.abstractmethod
    def get_user(self, name: str) -> r.User:
        """Return a user or raise NotFound."""

    @abc.abstractmethod
    def list_users(self) -> list[r.User]:
        """All users, by name."""

    @abc.abstractmethod
    def update_user(self, name: str, *, role: str | None = None, active: bool | None = None,
                    tenants: Iterable[str] | None = None) -> r.User:
        """Change role, active flag or tenant memberships."""

    @abc.abstractmethod
    def set_password(self, name: str, password: str) -> None:
        """Replace a user's password."""

    @abc.abstractmethod
    def authenticate(self, name: str, password: str) -> r.User:
        """Return the active user whose password matches, else raise AuthError (same message either way)."""

    @abc.abstractmethod
    def delete_user(self, name: str) -> None:
        """Delete a user and revoke their keys."""

    # -- secrets (docs/credentials.md) -------------------------------------
    # Exactly one owner per call: ``user`` (a user name), ``key_id`` (an API key: service accounts) or
    # ``tenant`` (the fallback for that tenant's documents). Values are sealed with the ``secrets_key``
    # setting (mcpgw_sdk.secrets) and never returned in clear; writes do not bump the config revision.
    @abc.abstractmethod
    def set_secret(self, name: str, value: str, *, user: str | None = None, key_id: int | None = None,
                   tenant: str | None = None, author: str | None = None) -> r.SecretInfo:
        """Seal and store (or replace) a secret; SecretError without a ``secrets_key``, ConfigError for a bad name/value."""

    @abc.abstractmethod
    def list_secrets(self, *, user: str | None = None, key_id: int | None = None,
                     tenant: str | None = None) -> list[r.SecretInfo]:
        """The names of one owner's secrets, by name (never the values)."""

    @abc.abstractmethod
    def delete_secret(self, name: str, *, user: str | None = None, key_id: int | None = None,
                      tenant: str | None = None) -> None:
        """Delete one secret; NotFound when that owner has none of that name."""

    @abc.abstractmethod
    def sealed_secrets(self, *, user: str | None = None, key_id: int | None = None,
                       tenant: str | None = None) -> dict[str, Any]:
        """One owner's secrets still sealed (``name`` → :class:`mcpgw_sdk.secrets.Sealed`), for the gateway."""


class ActivityStore(abc.ABC):
    """The activity part: chat sessions of the console's chat lab and the gateway's audit trail."""

    # -- chat --------------------------------------------------------------
    @abc.abstractmethod
    def create_chat(self, user: str, *, title: str = "New chat", prefix: str = "",
                    settings: dict[str, Any] | None = None) -> r.ChatSession:
        """Start a chat session."""

    @abc.abstractmethod
    def list_chats(self, *, user: str | None = None) -> list[r.ChatSession]:
        """Chat sessions, most recently updated first."""

    @abc.abstractmethod
    def get_chat(self, chat_id: str) -> r.ChatSession:
        """One chat session or NotFound."""

    @abc.abstractmethod
    def update_chat(self, chat_id: str, *, title: str | None = None,
                    settings: dict[str, Any] | None = None) -> r.ChatSession:
        """Rename a chat or change its settings."""

    @abc.abstractmethod
    def delete_chat(self, chat_id: str) -> None:
        """Delete a chat session and its messages."""

    @abc.abstractmethod
    def add_chat_message(self, chat_id: str, role: str, content: dict[str, Any]) -> r.ChatMessage:
        """Append a message."""

    @abc.abstractmethod
    def chat_messages(self, chat_id: str) -> list[r.ChatMessage]:
        """A chat's messages in order."""

    # -- audit -------------------------------------------------------------
    @abc.abstractmethod
    def write_audit(self, items: Iterable[r.AuditRecord]) -> None:
        """Insert audit records in one batch."""

    @abc.abstractmethod
    def query_audit(self, *, since: datetime | None = None, until: datetime | None = None,
                    tenant: str | None = None, prefix: str | None = None, server: str | None = None,
                    tool: str | None = None, user: str | None = None, outcome: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[r.AuditRecord]:
        """Audit records, newest first, filtered and paginated."""


class ValueStore(abc.ABC):
    """Small named values other parts keep in the database (generated secrets, shared counters).

    Writes never bump the config revision.
    """

    @abc.abstractmethod
    def get_value(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""

    @abc.abstractmethod
    def set_value(self, key: str, value: str, *, only_if_absent: bool = False) -> str:
        """Store ``value`` under ``key`` and return what is stored (with ``only_if_absent`` an existing one wins)."""

    @abc.abstractmethod
    def update_value(self, key: str, change: Callable[[str | None], str | None]) -> str | None:
        """Replace the value under ``key`` by ``change(current)`` atomically; ``None`` deletes it."""

    @abc.abstractmethod
    def delete_values(self, prefix: str, *, below: str) -> int:
        """Delete the values whose key starts with ``prefix`` and whose value sorts before ``below``."""


class Store(ConfigStore, AccountStore, ActivityStore, ValueStore):
    """The full store: every part (:class:`~mcpgw_sdk.sqlstore.SqlStore`)."""


def read_only_error(store: ConfigStore, what: str) -> ReadOnlyError:
    """The ReadOnlyError for a config-only store asked to ``what`` (e.g. ``"create users"``)."""
    return ReadOnlyError(f"{store.url} is a read-only directory store: cannot {what}; edit the files instead")


def require_part(store: ConfigStore, part: type[P], what: str) -> P:
    """``store`` when it has ``part`` (e.g. :class:`AccountStore`), else :func:`read_only_error` saying ``what``.

    >>> require_part(store, AccountStore, "create users").create_user("ann", pw)  # doctest: +SKIP
    """
    if isinstance(store, part):
        return store
    raise read_only_error(store, what)
