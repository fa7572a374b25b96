"""Plain, immutable records the store returns (never live ORM rows).

Every layer above the store (the workspace API, the gateway, the management
API, the console) works with these, so no caller holds a database connection
by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Tenant:
    """A tenant: a name and the URL prefix every router of its documents starts with."""

    id: int
    name: str
    prefix: str
    description: str = ""


#: The role that manages everything (users, tenants, every document).
ADMIN = "admin"
#: A user's ``role``: ``admin`` manages everything, ``member`` the tenants it belongs to.
ROLES = (ADMIN, "member")
#: The role of a user created without one.
DEFAULT_ROLE = "member"


@dataclass(frozen=True)
class User:
    """A user account. ``role`` is one of :data:`ROLES`; ``tenants`` lists tenant names."""

    id: int
    name: str
    role: str
    active: bool
    tenants: tuple[str, ...] = ()
    created_at: datetime | None = None


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored (the secret itself is shown once, at creation, never again).

    ``servers``/``tools`` empty means every server/tool of the tenant.
    """

    id: int
    name: str
    prefix: str  # the first characters of the secret, to recognise it in lists
    user: str
    tenant: str
    servers: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked: bool = False
    created_at: datetime | None = None
    secret_hash: str = field(default="", repr=False)


@dataclass(frozen=True)
class Document:
    """A config document as stored: identity, content (a plain dict) and its current version number.

    ``problem`` says why the stored content could not be read (``content`` is then empty); the
    gateway treats such a document like one that fails validation. ``checked`` is the store's
    :func:`~mcpgw_sdk.documents.validated_mark` of the content when it matches this process's
    validator (the content is then the validator's own output, not to be validated again), else ``""``.
    """

    tenant: str
    name: str
    content: dict[str, Any]
    version: int
    updated_at: datetime | None = None
    updated_by: str | None = None
    deleted: bool = False
    problem: str = ""
    checked: str = field(default="", repr=False, metadata={"internal": True})  # never shown by the API


@dataclass(frozen=True)
class Version:
    """One entry of a document's history. ``action`` is create, update, delete or revert."""

    tenant: str
    name: str
    version: int
    action: str
    content: dict[str, Any] | None
    content_hash: str
    author: str | None
    created_at: datetime
    reverted_from: int | None = None


@dataclass(frozen=True)
class ConfigSet:
    """Everything the gateway serves, read in one transaction at one revision."""

    revision: int
    documents: tuple[Document, ...]
    tenants: tuple[Tenant, ...]
    keys: tuple[ApiKey, ...]


@dataclass(frozen=True)
class ChatSession:
    """A chat-lab conversation: owner, title, the served prefix it talks to, model settings."""

    id: str
    user: str
    title: str
    prefix: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat session (OpenAI chat format in ``content``)."""

    session_id: str
    seq: int
    role: str
    content: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    """One tool call as the gateway saw it: who, what, outcome and latency."""

    ts: datetime
    tenant: str
    prefix: str
    server: str
    tool: str
    outcome: str  # ok | error | denied | timeout
    latency_ms: float
    user: str | None = None
    key_id: int | None = None
    session_id: str | None = None
    error: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class SecretInfo:
    """A stored secret as it may be shown: its owner and name, when it changed and by whom — never its value.

    ``owner_kind`` is ``user``, ``key`` or ``tenant``; ``owner`` the user name, key id (as text) or tenant name.
    """

    owner_kind: str
    owner: str
    name: str
    updated_at: datetime | None = None
    updated_by: str | None = None
