"""The accounts part of the SQL store: users, passwords and sealed per-owner secrets.

Password hashing (slow on purpose) runs outside the transaction. Secret writes do not
bump the config revision; user writes do when they change memberships (keys follow them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import peewee as pw

from .. import names, secrets, security
from .. import records as r
from ..errors import AuthError, ConfigError, ConflictError, NotFound
from ..store import AccountStore
from .base import SqlBase, _aware, _now

ROLES = r.ROLES
MIN_PASSWORD = 8


def _check_password(password) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ConfigError(f"password: must be at least {MIN_PASSWORD} characters")


class SqlAccounts(SqlBase, AccountStore):
    """:class:`~mcpgw_sdk.store.AccountStore` on SQL."""

    # -- users -------------------------------------------------------------------
    def _user(self, row) -> r.User:
        Tn, Ms = self.m.Tenant, self.m.Membership
        names = tuple(n for (n,) in Tn.select(Tn.name).join(Ms).where(Ms.user == row.id).order_by(Tn.name).tuples())
        return r.User(id=row.id, name=row.name, role=row.role, active=bool(row.active), tenants=names,
                      created_at=_aware(row.created_at))

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

    # -- secrets (sealed with the secrets_key: mcpgw_sdk/secrets.py) -------------
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
        def read():
            try:
                kind, owner_id, _ = self._secret_owner(user, key_id, tenant)
            except NotFound:
                return {}
            S = self.m.Secret
            rows = S.select(S.name, S.sealed).where(S.owner_kind == kind, S.owner_id == owner_id).tuples()
            return {name: secrets.Sealed(f"{kind}:{owner_id}", name, sealed) for name, sealed in rows}

        return self._read(read)
