"""The notebook API: :func:`connect` returns a :class:`Workspace` over a store.

>>> import mcpgw_sdk
>>> gw = mcpgw_sdk.connect("sqlite:///demo.db", upgrade=True)  # doctest: +SKIP
>>> doc = gw.document("users", tenant="default")  # doctest: +SKIP
>>> doc.rest_server("users", config={"base": "http://127.0.0.1:5236"})  # doctest: +SKIP
>>> doc.tool("get_user").get("{{ config.base }}/users/{{ args.email }}").arg("email", position="path")  # doctest: +SKIP
>>> doc.router("/default/users", server="users"); doc.save()  # doctest: +SKIP

Edits persist only on an explicit ``save()``; lists are :class:`~mcpgw_sdk.display.Table`
objects that show as HTML and offer ``to_dataframe()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import records as r
from .builders import DocumentBuilder
from .config_model import DEFAULT_TENANT
from .display import Diff, ServerInfo, Table, ToolInfo, VersionTable
from .documents import Problems
from .errors import ConfigError, NotFound, ReadOnlyError
from .local import LocalGateway
from .store import AccountStore, ConfigStore, require_part

FORMATS = ("mcpgw", "unla")


def connect(url: str | None = None, *, upgrade: bool = False, author: str | None = None) -> Workspace:
    """Open the store at ``url`` (default: ``MCPGW_DATABASE_URL``, else ``sqlite:///mcpgw.db``).

    With ``upgrade`` pending schema migrations are applied first (a new SQLite
    file needs it); without, a database that is behind raises MigrationRequired.
    ``author`` is recorded on every version this workspace writes.

    >>> gw = connect("sqlite:///:memory:", upgrade=True)  # doctest: +SKIP
    """
    from .opening import open_store  # loads peewee: not at import (see mcpgw_sdk/__init__.py)

    store = open_store(url, check=not upgrade)
    if upgrade:
        store.upgrade()
    return Workspace(store, author=author, url=url)


@dataclass(frozen=True)
class NewKey:
    """A freshly created API key and its secret: the only time the secret is available."""

    key: r.ApiKey
    secret: str

    def __repr__(self) -> str:
        return (f"API key {self.key.id} for {self.key.user} on tenant {self.key.tenant}: {self.secret}\n"
                "(store the secret now: it is not shown again)")


class Workspace:
    """Script configs, tenants, users and API keys of one store.

    >>> gw = Workspace(store)  # doctest: +SKIP
    >>> gw.tools()  # doctest: +SKIP
    """

    def __init__(self, store: ConfigStore, *, author: str | None = None, url: str | None = None):
        self.store = store
        self.author = author
        self._url = url

    def serve(self, *, port: int = 0, reload_interval: float = 0.5) -> LocalGateway:
        """Start a gateway for this store in a child process (see :class:`~mcpgw_sdk.local.LocalGateway`).

        >>> with gw.serve() as gateway:  # doctest: +SKIP
        ...     gateway.client("/default/users").list_tools()
        """
        return LocalGateway(self._url, port=port, reload_interval=reload_interval).start()

    def revision(self) -> int:
        """The config revision: it grows with every saved change; gateways serve the latest within one poll."""
        return self.store.revision()

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Workspace {self.store.url}>"

    # -- documents -----------------------------------------------------------
    def document(self, name: str, *, tenant: str = DEFAULT_TENANT) -> DocumentBuilder:
        """The document ``tenant/name`` to edit: the stored one, or a new empty one.

        >>> doc = gw.document("users", tenant="default")  # doctest: +SKIP
        >>> doc.tool("ping").get("http://127.0.0.1:5236/ping"); doc.save()  # doctest: +SKIP
        """
        try:
            return self.get(tenant, name)
        except NotFound:
            return DocumentBuilder(name, tenant=tenant, store=self.store, author=self.author)

    def get(self, tenant: str, name: str) -> DocumentBuilder:
        """The stored document ``tenant/name`` to read or edit (NotFound when there is none).

        >>> gw.get("default", "users").version  # doctest: +SKIP
        3
        """
        record = self.store.get_document(tenant, name)
        return DocumentBuilder.from_record(record, store=self.store, author=self.author)

    def documents(self, tenant: str | None = None, *, include_deleted: bool = False) -> Table:
        """Stored documents (tenant, name, version, updated_at, updated_by), optionally of one tenant.

        >>> gw.documents().to_dataframe()  # doctest: +SKIP
        """
        rows = self.store.list_documents(tenant=tenant, include_deleted=include_deleted)
        return Table(rows, columns=["tenant", "name", "version", "updated_at", "updated_by", "deleted"],
                     title="Documents")

    def delete(self, tenant: str, name: str) -> r.Version:
        """Delete a document (its history keeps it restorable with :meth:`rollback`)."""
        return self.store.delete_document(tenant, name, author=self.author)

    def versions(self, tenant: str, name: str) -> VersionTable:
        """A document's history, newest first.

        >>> gw.versions("default", "users")  # doctest: +SKIP
        """
        rows = self.store.list_versions(tenant, name)
        return VersionTable(rows, columns=["version", "action", "author", "created_at", "reverted_from"],
                            title=f"{tenant}/{name} versions")

    def diff(self, tenant: str, name: str, a: int, b: int) -> Diff:
        """A unified diff of versions ``a`` and ``b`` (shown coloured in notebooks).

        >>> print(gw.diff("default", "users", 1, 2))  # doctest: +SKIP
        """
        return Diff(self.store.diff_versions(tenant, name, a, b))

    def rollback(self, tenant: str, name: str, version: int) -> DocumentBuilder:
        """Restore ``version``'s content as a new version; return the document."""
        record = self.store.rollback(tenant, name, version, author=self.author)
        return DocumentBuilder.from_record(record, store=self.store, author=self.author)

    def disable(self, tenant: str, name: str, prefix: str | None = None) -> DocumentBuilder:
        """Stop serving a router of ``tenant/name`` (``disabled: true``), saved as a new version.

        ``prefix`` names the router; it may be left out when the document has one. Gateways answer 404
        on the prefix within one poll and end its sessions; the prefix stays reserved. Undo it with
        :meth:`enable` or :meth:`rollback`.

        >>> gw.disable("default", "users", "/default/users").version  # doctest: +SKIP
        4
        """
        return self._toggle(tenant, name, prefix, disabled=True)

    def enable(self, tenant: str, name: str, prefix: str | None = None) -> DocumentBuilder:
        """Serve a disabled router of ``tenant/name`` again, saved as a new version (see :meth:`disable`)."""
        return self._toggle(tenant, name, prefix, disabled=False)

    def _toggle(self, tenant: str, name: str, prefix: str | None, *, disabled: bool) -> DocumentBuilder:
        from .builders import RouterBuilder
        from .documents import normalize_prefix

        doc = self.get(tenant, name)
        routers = [r for r in doc.content.get("routers") or [] if isinstance(r, dict)]
        if prefix is None:
            if len(routers) != 1:
                found = ", ".join(str(r.get("prefix")) for r in routers) or "none"
                raise ConfigError(f"prefix: {tenant}/{name} has {len(routers)} routers ({found}); name one")
            router = routers[0]
        else:
            wanted = normalize_prefix(prefix)
            router = next((r for r in routers if normalize_prefix(str(r.get("prefix", ""))) == wanted), None)
            if router is None:
                raise NotFound(f"{tenant}/{name} has no router with prefix {wanted!r}")
        builder = RouterBuilder(doc, router)
        if disabled:
            builder.disable()
        else:
            builder.enable()
        return doc.save()

    def check(self) -> Problems:
        """Validate every stored document; return one line per problem (empty when all are valid).

        Besides each document's own rules it checks what spans documents: router
        prefixes are unique, inside their tenant's prefix, and tenants exist. The
        result's ``warnings`` list what is valid but fails when used (an ``env()`` name
        ``MCPGW_TEMPLATE_ENV`` does not allow), as ``mcpgw check`` prints them.

        >>> gw.check()  # doctest: +SKIP
        []
        >>> gw.check().warnings  # doctest: +SKIP
        ["default/mix: mcpServers[0].env.TOKEN: env('X') is not allowed; add it to MCPGW_TEMPLATE_ENV (...)"]
        """
        from . import documents

        problems = documents.Problems()
        records = self.store.list_documents()
        for record in records:
            try:
                documents.validate(record.content)
            except ConfigError as exc:
                problems.extend(exc.errors)
            problems.warnings.extend(documents.warnings(record.content))
        tenants = {t.name: t.prefix for t in self.store.list_tenants()}
        across = documents.validate_set([d.content for d in records], tenants)
        for ident in sorted(across):
            problems.extend(across[ident])
        return problems

    # -- lists across documents ----------------------------------------------
    def _contents(self, tenant: str | None = None) -> list[r.Document]:
        return self.store.list_documents(tenant=tenant)

    def servers(self, tenant: str | None = None) -> Table:
        """Every REST and upstream MCP server, with the prefixes serving it.

        >>> gw.servers()  # doctest: +SKIP
        """
        rows = []
        for record in self._contents(tenant):
            content = record.content
            prefixes: dict[str, list[str]] = {}
            for router in content.get("routers", []) or []:
                for server in _router_servers(router):
                    prefixes.setdefault(server, []).append(router.get("prefix", ""))
            for server in content.get("servers", []) or []:
                rows.append(ServerInfo(record.tenant, record.name, server.get("name", ""), "rest",
                                       server.get("description", ""), tuple(prefixes.get(server.get("name"), [])),
                                       tuple(server.get("allowedTools", []) or []), server=server))
            for server in content.get("mcpServers", []) or []:
                target = server.get("url") or " ".join([server.get("command", "")] + list(server.get("args", [])))
                rows.append(ServerInfo(record.tenant, record.name, server.get("name", ""), "mcp",
                                       server.get("description", ""), tuple(prefixes.get(server.get("name"), [])),
                                       tuple(server.get("allowedTools", []) or []), target=target, server=server))
        return Table(rows, columns=["tenant", "document", "name", "kind", "prefixes", "tools", "description"],
                     title="Servers")

    def tools(self, tenant: str | None = None) -> Table:
        """Every REST tool: tenant, document, server, name, method, endpoint and argument names.

        More than ``Table.PAGE`` tools show as a summary: counts per document and per server, the first
        rows, and in notebooks a paged HTML table (``.page(n)``, ``.to_dataframe()`` for all).

        >>> gw.tools()[0]  # a single tool shows its arguments table  # doctest: +SKIP
        """
        rows = []
        for record in self._contents(tenant):
            content = record.content
            owners: dict[str, str] = {}
            for server in content.get("servers", []) or []:
                for tool in server.get("allowedTools", []) or []:
                    owners.setdefault(tool, server.get("name", ""))
            for tool in content.get("tools", []) or []:
                rows.append(ToolInfo(record.tenant, record.name, owners.get(tool.get("name"), ""),
                                     tool.get("name", ""), tool.get("description", ""), tool.get("method", ""),
                                     tool.get("endpoint", ""),
                                     tuple(a.get("name", "") for a in tool.get("args", []) or []), tool=tool))
        return Table(rows, columns=["tenant", "document", "server", "name", "method", "endpoint", "args",
                                    "description"], title="Tools", group_by=["tenant/document", "server"])

    def prompts(self, tenant: str | None = None) -> Table:
        """Every prompt: tenant, document, name, description and argument names."""
        rows = []
        for record in self._contents(tenant):
            for prompt in record.content.get("prompts", []) or []:
                rows.append({"tenant": record.tenant, "document": record.name, "name": prompt.get("name", ""),
                             "description": prompt.get("description", ""),
                             "arguments": [a.get("name", "") for a in prompt.get("arguments", []) or []]})
        return Table(rows, columns=["tenant", "document", "name", "arguments", "description"], title="Prompts")

    def upstreams(self, tenant: str | None = None) -> Table:
        """Every upstream MCP server: type, and command or URL."""
        rows = [s for s in self.servers(tenant) if s.kind == "mcp"]
        return Table(rows, columns=["tenant", "document", "name", "prefixes", "target"],
                     title="Upstream MCP servers")

    # -- tenants, users, keys -----------------------------------------------
    def tenants(self) -> Table:
        """All tenants (name, prefix, description)."""
        return Table(self.store.list_tenants(), columns=["name", "prefix", "description"], title="Tenants")

    def create_tenant(self, name: str, *, prefix: str | None = None, description: str = "") -> r.Tenant:
        """Create a tenant; its router prefixes start with ``prefix`` (default ``/name``)."""
        return self.store.create_tenant(name, prefix=prefix, description=description)

    def users(self) -> Table:
        """All users (name, role, active, tenants)."""
        users = self.store.list_users() if isinstance(self.store, AccountStore) else []
        return Table(users, columns=["name", "role", "active", "tenants", "created_at"], title="Users")

    def create_user(self, name: str, password: str, *, role: str = r.DEFAULT_ROLE, tenants: Iterable[str] = ()
                    ) -> r.User:
        """Create a user (``role`` admin or member) belonging to ``tenants``."""
        if role not in r.ROLES:
            raise ConfigError(f"role: {role!r} is not one of {', '.join(r.ROLES)}")
        return require_part(self.store, AccountStore, "create users").create_user(name, password, role=role, tenants=tenants)

    def keys(self, *, user: str | None = None, tenant: str | None = None) -> Table:
        """API keys, newest first (never their secrets)."""
        return Table(self.store.list_keys(user=user, tenant=tenant),
                     columns=["id", "name", "prefix", "user", "tenant", "servers", "tools", "expires_at",
                              "last_used_at", "revoked"], title="API keys")

    def create_key(self, user: str, tenant: str, *, name: str = "", servers: Iterable[str] = (),
                   tools: Iterable[str] = (), expires_days: float | None = None) -> NewKey:
        """Create an API key for ``user`` on ``tenant``; the result holds the secret, shown this once.

        ``servers``/``tools`` restrict the key (empty: all of the tenant's).

        >>> new = gw.create_key("alice", "default", expires_days=30); new.secret  # doctest: +SKIP
        """
        expires_at = None
        if expires_days is not None:
            if expires_days <= 0:
                raise ConfigError(f"expires_days: {expires_days} must be positive")
            expires_at = datetime.now(timezone.utc) + timedelta(days=expires_days)
        key, secret = self.store.create_key(user, tenant, name=name, servers=servers, tools=tools,
                                            expires_at=expires_at)
        return NewKey(key, secret)

    def revoke_key(self, key_id: int) -> None:
        """Revoke an API key; gateways drop it within one poll."""
        self.store.revoke_key(key_id)

    # -- per-user secrets (docs/credentials.md) --------------------------------
    def _secret_owner(self, user: str | None, key: int | None, tenant: str | None) -> dict[str, Any]:
        given = {k: v for k, v in (("user", user), ("key_id", key), ("tenant", tenant)) if v is not None}
        if not given and self.author:
            given = {"user": self.author}
        if len(given) != 1:
            raise ConfigError("say whose secret this is: exactly one of user=, key= or tenant= "
                              "(or connect(..., author=USER) to mean that user)")
        return given

    def set_secret(self, name: str, value: str, *, user: str | None = None, key: int | None = None,
                   tenant: str | None = None) -> r.SecretInfo:
        """Set or replace a secret that templates read as ``{{ secrets.NAME }}`` (sealed with ``MCPGW_SECRETS_KEY``).

        The owner is ``user`` (default: this workspace's ``author``), an API key's id (``key``: service
        accounts; used before the key owner's own) or a ``tenant`` (the fallback for that tenant's
        documents when the caller has none). The value is never shown back.

        >>> gw.set_secret("GITHUB_TOKEN", getpass(), user="alice")  # doctest: +SKIP
        """
        owner = self._secret_owner(user, key, tenant)
        if not isinstance(self.store, AccountStore):
            raise ReadOnlyError(f"{self.store.url} is a read-only directory store: it cannot keep per-user secrets; "
                                "use a SQL store (sqlite://, postgresql://, mysql://)")
        return self.store.set_secret(name, value, author=self.author, **owner)

    def secrets(self, *, user: str | None = None, key: int | None = None, tenant: str | None = None) -> Table:
        """The names of one owner's secrets and when they changed (never the values)."""
        owner = self._secret_owner(user, key, tenant)
        found = self.store.list_secrets(**owner) if isinstance(self.store, AccountStore) else []
        return Table(found, columns=["name", "owner_kind", "owner", "updated_at", "updated_by"], title="Secrets")

    def delete_secret(self, name: str, *, user: str | None = None, key: int | None = None,
                      tenant: str | None = None) -> None:
        """Delete one secret (NotFound when that owner has none of that name)."""
        owner = self._secret_owner(user, key, tenant)
        if not isinstance(self.store, AccountStore):
            raise NotFound(f"secret {name!r} is not set")
        self.store.delete_secret(name, **owner)

    # -- import and export ---------------------------------------------------
    def parse(self, text: str, *, source: str = "<text>", format: str | None = None) -> list[dict[str, Any]]:
        """Parse YAML/JSON text (one or more documents) into our document format, translating Unla's.

        ``format`` is ``mcpgw``, ``unla`` or ``None`` (detect Unla documents); see
        :func:`mcpgw_sdk.unla.import_document` for what an import of each checks.
        """
        from . import documents, unla

        if format is not None and format not in FORMATS:
            raise ConfigError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
        parsed = documents.parse_text(text, source=source)
        items = parsed if isinstance(parsed, list) else [parsed]
        contents = []
        for item in items:  # Unla's documents translated, env() names checked; Go templates as ours refused
            contents.append(unla.import_document(item, format=format, option='format="unla"'))
        return contents

    def import_files(self, paths: Iterable[str | Path], *, format: str | None = None) -> list[r.Document]:
        """Import documents from files in one transaction: all are saved, or none.

        A document whose (tenant, name) exists becomes its new version.
        """
        contents: list[dict[str, Any]] = []
        for path in paths:
            path = Path(path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
            contents.extend(self.parse(text, source=str(path), format=format))
        if not contents:
            raise ConfigError("nothing to import: the files hold no documents")
        return self.store.import_documents(contents, author=self.author)

    def import_file(self, path: str | Path, format: str | None = None) -> list[r.Document]:
        """Import the documents of one YAML/JSON file (ours or Unla's, detected); see :meth:`import_files`.

        >>> gw.import_file("configs/users.yaml")  # doctest: +SKIP
        """
        return self.import_files([path], format=format)

    def openapi(self, spec: Any, *, name: str, tenant: str = DEFAULT_TENANT, prefix: str | None = None,
                base_url: str | None = None, headers: dict[str, str] | None = None,
                config: dict[str, str] | None = None) -> DocumentBuilder:
        """Convert an OpenAPI/Swagger spec (dict, file path or URL) into an unsaved document.

        Inspect or edit it, then ``save()``; :meth:`import_openapi` does both. ``headers`` (sent by every
        tool) and ``config`` (server config values, e.g. credentials) are as in
        :func:`mcpgw_sdk.openapi.from_openapi`.
        """
        from . import openapi

        if not isinstance(spec, dict):
            spec = openapi.load_spec(str(spec))
        content = openapi.from_openapi(spec, name=name, tenant=tenant, prefix=prefix, base_url=base_url,
                                       headers=headers, config=config)
        doc = self.document(name, tenant=tenant)
        doc.content = content
        return doc

    def import_openapi(self, spec: Any, *, name: str, tenant: str = DEFAULT_TENANT, prefix: str | None = None,
                       base_url: str | None = None, headers: dict[str, str] | None = None,
                       config: dict[str, str] | None = None) -> DocumentBuilder:
        """Convert an OpenAPI spec into a document and save it (replacing ``tenant/name`` as a new version).

        >>> gw.import_openapi("petstore.json", name="pets", prefix="/default/pets")  # doctest: +SKIP
        """
        doc = self.openapi(spec, name=name, tenant=tenant, prefix=prefix, base_url=base_url, headers=headers,
                           config=config)
        record = self.store.save_document(doc.content, author=self.author)
        return DocumentBuilder.from_record(record, store=self.store, author=self.author)

    def export(self, tenant: str | None = None, name: str | None = None, format: str = "mcpgw", *,
               skipped: list[str] | None = None) -> str:
        """Stored documents as a YAML stream (``---`` between documents), ours or Unla's format.

        A document with no Unla spelling raises :class:`TemplateError`; when a ``skipped``
        list is given it is left out instead and ``"tenant/name: reason"`` appended to it.

        >>> print(gw.export(tenant="default", format="unla"))  # doctest: +SKIP
        """
        from . import documents

        if format not in FORMATS:
            raise ConfigError(f"format: {format!r} is not one of {', '.join(FORMATS)}")
        if name is not None:
            if tenant is None:
                matches = [d for d in self.store.list_documents() if d.name == name]
                if not matches:
                    raise NotFound(f"no document named {name!r}")
                records = matches
            else:
                records = [self.store.get_document(tenant, name)]
        else:
            records = self.store.list_documents(tenant=tenant)
        parts = []
        for record in records:
            content = record.content
            if format == "unla":
                from . import unla
                from .errors import TemplateError

                try:
                    content = unla.to_unla(content)
                except TemplateError as exc:
                    if skipped is None:
                        raise
                    key = f"{record.tenant}/{record.name}"
                    skipped.append("; ".join(e if e.startswith(key) else f"{key}: {e}" for e in exc.errors))
                    continue
            parts.append(documents.to_yaml(content))
        return "---\n".join(p if p.endswith("\n") else p + "\n" for p in parts)


def _router_servers(router: dict[str, Any]) -> list[str]:
    servers = list(router.get("servers", []) or [])
    if router.get("server"):
        servers.insert(0, router["server"])
    return servers

