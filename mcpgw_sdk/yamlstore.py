"""A read-only store over a directory of config documents (``yaml:///dir``).

Every ``*.yaml``, ``*.yml`` and ``*.json`` file directly in the directory holds
one or more documents. The revision is a stable number derived from the files'
names, sizes and modification times, so editing, adding or removing a file
changes it and the gateway reloads within one poll. Tenants are inferred from
the documents; there are no keys. It implements only
:class:`~mcpgw_sdk.store.ConfigStore`: no users, secrets, chats, audit records
or stored values (callers check with ``isinstance``). Writes raise
:class:`~mcpgw_sdk.errors.ReadOnlyError`; ``touch_keys`` is accepted and dropped. Problems in the
files (syntax errors, invalid documents, a prefix used twice) are logged and
listed in :attr:`YamlStore.errors`; invalid documents are still returned as
written, so the gateway can keep their last good version.

``yaml:///relative/dir`` is relative to the working directory and
``yaml:////absolute/dir`` absolute, as with SQLite URLs (an absolute reading is
used when only that one exists).

>>> store = YamlStore("yaml:///configs")  # doctest: +SKIP
>>> store.load_config().documents  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import records as r
from .errors import AuthError, ConfigError, NotFound, StorageError, TemplateError
from .store import ConfigStore, read_only_error

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml", ".json")


def _directory(url: str) -> Path:
    rest = url.split("://", 1)[1] if "://" in url else url
    if not rest.startswith("/") or len(rest) < 2:
        raise ConfigError(f"database_url: {url!r}: use yaml:///relative/dir or yaml:////absolute/dir")
    relative = Path(rest[1:])
    if not relative.is_absolute() and not relative.exists() and Path(rest).exists():
        return Path(rest)
    return relative


class YamlStore(ConfigStore):
    """The read-only directory store: the config part of a store only. See the module documentation."""

    read_only = True

    def __init__(self, url: str):
        self.url = url
        self.path = _directory(url)
        if not self.path.is_dir():
            raise StorageError(f"config directory of {url} does not exist: {self.path}")
        self._lock = threading.Lock()
        self._cache: tuple[tuple, dict[str, Any]] | None = None
        #: Problems found in the files at the last load (``file: reason``), e.g. YAML syntax errors.
        self.errors: list[str] = []

    def __repr__(self) -> str:
        return f"<YamlStore {self.url}>"

    # -- scanning and loading -----------------------------------------------------
    def _scan(self) -> tuple:
        try:
            entries = [(e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(self.path)
                       if e.name.endswith(SUFFIXES) and not e.name.startswith(".") and e.is_file()]
        except OSError as exc:
            raise StorageError(f"cannot read config directory {self.path}: {exc}") from None
        return tuple(sorted(entries))

    @staticmethod
    def _revision_of(fingerprint: tuple) -> int:
        digest = hashlib.sha256(repr(fingerprint).encode()).digest()
        return int.from_bytes(digest[:7], "big") + 1

    def _state(self) -> dict[str, Any]:
        fingerprint = self._scan()
        with self._lock:
            if self._cache is not None and self._cache[0] == fingerprint:
                return self._cache[1]
            state = self._load(fingerprint)
            self._cache = (fingerprint, state)
            self.errors = state["errors"]
            return state

    def _load(self, fingerprint: tuple) -> dict[str, Any]:
        from . import documents, unla

        docs: dict[tuple[str, str], r.Document] = {}
        sources: dict[tuple[str, str], str] = {}
        valid: set[tuple[str, str]] = set()
        errors: list[str] = []
        last = self._cache[1] if self._cache is not None else {}
        for name, mtime_ns, _size in fingerprint:
            try:
                text = (self.path / name).read_text(encoding="utf-8")
                parsed = documents.parse_text(text, source=name)
            except (OSError, UnicodeDecodeError, ConfigError, RecursionError) as exc:
                errors.append(f"{name}: {exc}" if not str(exc).startswith(name) else str(exc))
                # A file that no longer parses keeps the documents it last gave, as an invalid document does.
                for key, source in (last.get("sources") or {}).items():
                    if source == name and key not in docs:
                        errors.append(f"{name}: document {key[0]}/{key[1]}: serving its last good version")
                        sources[key] = name
                        docs[key] = last["documents"][key]
                continue
            when = datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc)
            for content in parsed:
                if unla.is_unla(content):  # as `mcpgw import` does: Unla's Go templates become ours
                    try:
                        content = unla.from_unla(content)
                    except TemplateError as exc:
                        errors.extend(f"{name}: {e}" for e in exc.errors)
                try:
                    content = documents.validate(content)
                    valid.add(documents.key(content))
                except ConfigError as exc:
                    # Kept as written: the gateway validates each document and keeps its last good version.
                    errors.extend(f"{name}: {e}" for e in exc.errors)
                except RecursionError:
                    errors.append(f"{name}: a document is nested too deeply; ignored")
                    continue
                key = documents.key(content)
                if not all(isinstance(part, str) for part in key):
                    errors.append(f"{name}: a document whose tenant or name is not a string; ignored")
                    continue
                if key in docs:
                    errors.append(f"{name}: document {key[0]}/{key[1]} is also in {sources[key]}; ignored here")
                    continue
                sources[key] = name
                docs[key] = r.Document(tenant=key[0], name=key[1], content=content, version=1, updated_at=when)
        # Only documents that validated are shaped well enough for the checks across documents.
        checked = [d for k, d in docs.items() if k in valid]
        tenants = self._infer_tenants(checked, also=[k[0] for k in docs])
        problems = documents.validate_set([d.content for d in checked], {t.name: t.prefix for t in tenants})
        errors.extend(f"{sources[k]}: {e}" for k, lines in sorted(problems.items()) for e in lines)
        for line in errors:
            log.warning("yaml store %s: %s", self.path, line)
        return {"revision": self._revision_of(fingerprint), "documents": dict(sorted(docs.items())),
                "tenants": tenants, "errors": errors, "sources": sources}

    @staticmethod
    def _infer_tenants(docs: Iterable[r.Document], also: Iterable[str] = ()) -> tuple[r.Tenant, ...]:
        """One tenant per tenant name: prefix = the first path segment all its routers share, else ``/``.

        ``also`` names tenants of documents whose routers cannot be read (they get ``/`` unless others say more).
        """
        from . import documents

        segments: dict[str, set[str]] = {name: set() for name in also}
        for doc in docs:
            found = segments.setdefault(doc.tenant, set())
            for prefix in documents.prefixes(doc.content) if isinstance(doc.content, dict) else []:
                found.add("/" + prefix.strip("/").split("/", 1)[0])
        return tuple(r.Tenant(id=i, name=name, prefix=next(iter(segs)) if len(segs) == 1 else "/")
                     for i, (name, segs) in enumerate(sorted(segments.items()), 1))

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Nothing to close."""

    def upgrade(self) -> list[str]:
        """A directory has no schema: nothing to apply."""
        return []

    def migration_status(self) -> list[tuple[str, bool]]:
        """A directory has no migrations."""
        return []

    def check_schema(self) -> None:
        """Always current."""

    def ping(self) -> None:
        """Raise StorageError when the directory cannot be read."""
        if not self.path.is_dir():
            raise StorageError(f"config directory of {self.url} does not exist: {self.path}")
        self._scan()

    def revision(self) -> int:
        """A number that changes whenever a file is added, removed or modified (one directory scan)."""
        return self._revision_of(self._scan())

    def load_config(self) -> r.ConfigSet:
        """Every document in the directory, with inferred tenants and no keys."""
        state = self._state()
        return r.ConfigSet(revision=state["revision"], documents=tuple(state["documents"].values()),
                           tenants=state["tenants"], keys=())

    def _readonly(self, what: str):
        raise read_only_error(self, what)

    # -- tenants -----------------------------------------------------------------------
    def create_tenant(self, name: str, *, prefix: str | None = None, description: str = "") -> r.Tenant:
        """Read-only: raises ReadOnlyError."""
        self._readonly("create tenants")

    def get_tenant(self, name: str) -> r.Tenant:
        """An inferred tenant or NotFound."""
        for tenant in self._state()["tenants"]:
            if tenant.name == name:
                return tenant
        raise NotFound(f"tenant {name!r} does not exist")

    def list_tenants(self) -> list[r.Tenant]:
        """The tenants the documents name, by name."""
        return list(self._state()["tenants"])

    def update_tenant(self, name: str, *, prefix: str | None = None, description: str | None = None) -> r.Tenant:
        """Read-only: raises ReadOnlyError."""
        self._readonly("change tenants")

    def delete_tenant(self, name: str) -> None:
        """Read-only: raises ReadOnlyError."""
        self._readonly("delete tenants")

    # -- API keys (none) -------------------------------------------------------------
    def create_key(self, user: str, tenant: str, *, name: str = "", servers: Iterable[str] = (),
                   tools: Iterable[str] = (), expires_at: datetime | None = None) -> tuple[r.ApiKey, str]:
        """Read-only: raises ReadOnlyError."""
        self._readonly("create API keys")

    def list_keys(self, *, user: str | None = None, tenant: str | None = None) -> list[r.ApiKey]:
        """There are no keys."""
        return []

    def get_key(self, key_id: int) -> r.ApiKey:
        """There are no keys: NotFound."""
        raise NotFound(f"API key {key_id} does not exist")

    def revoke_key(self, key_id: int) -> None:
        """Read-only: raises ReadOnlyError."""
        self._readonly("revoke API keys")

    def verify_key(self, secret: str) -> r.ApiKey:
        """There are no keys: AuthError."""
        raise AuthError("invalid API key")

    def touch_keys(self, used: dict[int, datetime]) -> None:
        """Dropped: there are no keys to touch."""

    # -- documents -------------------------------------------------------------------
    def list_documents(self, *, tenant: str | None = None, include_deleted: bool = False) -> list[r.Document]:
        """Documents ordered by tenant, name (none is ever deleted)."""
        return [d for d in self._state()["documents"].values() if tenant is None or d.tenant == tenant]

    def get_document(self, tenant: str, name: str, *, include_deleted: bool = False) -> r.Document:
        """A document or NotFound."""
        doc = self._state()["documents"].get((tenant, name))
        if doc is None:
            raise NotFound(f"document {tenant}/{name} does not exist")
        return doc

    def create_document(self, content: dict[str, Any], *, author: str | None = None,
                        actor: r.User | None = None) -> r.Document:
        """Read-only: raises ReadOnlyError."""
        self._readonly("create documents")

    def save_document(self, content: dict[str, Any], *, author: str | None = None,
                      base_version: int | None = None, actor: r.User | None = None) -> r.Document:
        """Read-only: raises ReadOnlyError."""
        self._readonly("save documents")

    def delete_document(self, tenant: str, name: str, *, author: str | None = None,
                        base_version: int | None = None) -> r.Version:
        """Read-only: raises ReadOnlyError."""
        self._readonly("delete documents")

    def list_versions(self, tenant: str, name: str) -> list[r.Version]:
        """One version per document: the file as it is."""
        from . import documents

        doc = self.get_document(tenant, name)
        return [r.Version(tenant=tenant, name=name, version=1, action="create", content=doc.content,
                          content_hash=documents.content_hash(doc.content), author=None,
                          created_at=doc.updated_at or datetime.now(timezone.utc))]

    def get_version(self, tenant: str, name: str, version: int) -> r.Version:
        """Version 1 (the file) or NotFound."""
        versions = self.list_versions(tenant, name)
        if version != 1:
            raise NotFound(f"document {tenant}/{name} has no version {version}")
        return versions[0]

    def diff_versions(self, tenant: str, name: str, a: int, b: int) -> str:
        """Only version 1 exists, so the diff is empty (NotFound for other versions)."""
        self.get_version(tenant, name, a)
        self.get_version(tenant, name, b)
        return ""

    def rollback(self, tenant: str, name: str, version: int, *, author: str | None = None,
                 actor: r.User | None = None) -> r.Document:
        """Read-only: raises ReadOnlyError."""
        self._readonly("roll back documents")

    def import_documents(self, contents: list[dict[str, Any]], *, author: str | None = None,
                         actor: r.User | None = None) -> list[r.Document]:
        """Read-only: raises ReadOnlyError."""
        self._readonly("import documents")
