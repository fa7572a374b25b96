"""The config part of the SQL store: revision, bulk load, tenants, API keys, documents and versions.

Every write here bumps the config revision first (see :mod:`mcpgw_sdk.sql.base`), except
:meth:`SqlConfig.touch_keys`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from difflib import unified_diff
from typing import Any

import peewee as pw

from .. import documents, names, policy, security, settings
from .. import records as r
from ..errors import AuthError, ConfigError, ConflictError, Forbidden, MigrationRequired, NotFound
from ..store import ConfigStore
from .base import SqlBase, T, _aware, _dumps, _naive, _NoChange, _now, log


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


def _check_text(field: str, value: str | None) -> str:
    """Text stored in a column: no NUL (PostgreSQL refuses it) and no lone surrogate (nothing encodes it)."""
    errors = names.text_errors(value or "", field)
    if errors:
        raise ConfigError(errors[0], errors)
    return value or ""


def _first_segment(prefix: str) -> str:
    return "/" + prefix.strip("/").split("/", 1)[0]


class SqlConfig(SqlBase, ConfigStore):
    """:class:`~mcpgw_sdk.store.ConfigStore` on SQL: what the gateway reads, and the writes that bump the revision."""

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
            for name, raw, version, updated_at, updated_by, tenant, mark in (
                    D.select(D.name, body, D.version, D.updated_at, D.updated_by, Tn.name, D.checked).join(Tn)
                    .where(D.deleted == False).order_by(Tn.name, D.name).tuples()):  # noqa: E712 - SQL expression
                content, problem = _decode_content(raw)
                # Trusted only for the exact text this validator accepted (an edit behind the store's back,
                # another tool or version leaves a mark that does not match): the gateway then skips validation.
                checked = mark if mark and not problem and mark == documents.validated_mark(raw) else ""
                try:
                    updated_at = _aware(updated_at)
                except (TypeError, ValueError):
                    updated_at = None  # only ever shown: an unreadable timestamp must not cost the document
                docs.append(r.Document(tenant=tenant, name=name, content=content, version=version,
                                       updated_at=updated_at, updated_by=updated_by, problem=problem,
                                       checked=checked))
            tenants = tuple(self._tenant(t) for t in Tn.select().order_by(Tn.name))
            keys = self._live_keys(_now())
            return r.ConfigSet(revision=revision, documents=tuple(docs), tenants=tenants, keys=keys)

        return self._run(load, begin=self._snapshot_begin, retry=True)

    # -- tenants -----------------------------------------------------------------
    @staticmethod
    def _tenant(row) -> r.Tenant:
        return r.Tenant(id=row.id, name=row.name, prefix=row.prefix, description=row.description or "")

    def create_tenant(self, name: str, *, prefix: str | None = None, description: str = "") -> r.Tenant:
        """Create a tenant (prefix defaults to ``/name``); ConflictError when it exists."""
        names.check_account("name", name)
        prefix = documents.check_prefix("prefix", prefix if prefix is not None else "/" + name)
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
            prefix = documents.check_prefix("prefix", prefix)
        if description is not None:
            _check_text("description", description)

        def update():
            row = self._tenant_row(name)
            if prefix is not None and prefix != row.prefix:
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
        return (U.role == r.ADMIN) | pw.fn.EXISTS(member)

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
            if user_row.role != r.ADMIN and Ms.get_or_none(Ms.user == user_row.id, Ms.tenant == tenant_row.id) is None:
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
        keep = max(1, int(settings.resolve().version_retention))
        if row.version > keep:
            DV.delete().where(DV.document == row.id, DV.version <= row.version - keep).execute()

    def _put(self, content: dict, row, *, author: str | None, action: str, reverted_from: int | None = None,
             base_version: int | None = None, tenant_ids: dict[str, int] | None = None) -> r.Document:
        """Write ``content`` (validated) as the next version of ``row`` (None: a new document)."""
        tenant, name = documents.key(content)
        D = self.m.Document
        now = _now()
        digest = documents.content_hash(content)
        text = _dumps(content)
        mark = documents.validated_mark(text)  # ``content`` is validate()'s output (see load_config)
        fresh = row is None
        if fresh:
            tenant_id = tenant_ids[tenant] if tenant_ids and tenant in tenant_ids else \
                self._ensure_tenant(tenant, content).id
            try:
                row = D.create(tenant=tenant_id, name=name, content=text, version=1, content_hash=digest,
                               deleted=False, updated_at=now, updated_by=author, checked=mark)
            except pw.IntegrityError:
                # Writers are serialised by the revision row lock, so this is a last line of defence.
                raise ConflictError(f"document {tenant}/{name} was created concurrently",
                                    base_version=base_version) from None
        else:
            expected = row.version
            changed = D.update(content=text, version=expected + 1, content_hash=digest, deleted=False, checked=mark,
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
        va, vb = self.get_version(tenant, name, a), self.get_version(tenant, name, b)
        text_a = documents.to_yaml(va.content) if va.content is not None else ""
        text_b = documents.to_yaml(vb.content) if vb.content is not None else ""
        return "".join(unified_diff(text_a.splitlines(keepends=True), text_b.splitlines(keepends=True),
                                    fromfile=f"{tenant}/{name}@v{a}", tofile=f"{tenant}/{name}@v{b}"))

    def rollback(self, tenant: str, name: str, version: int, *, author: str | None = None,
                 actor: r.User | None = None) -> r.Document:
        """Restore ``version``'s content as a new ``revert`` version (un-deletes a deleted document)."""
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
