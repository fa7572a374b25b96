"""Who may see and change what: the one access policy of the management API and the console.

Pure and IO-free: an :class:`Access` wraps one :class:`~mcpgw_sdk.records.User` and answers
questions about tenant names and records the caller already holds. Each front end only decides
how a refusal looks: the API lets ``require_*`` raise (its error table turns :class:`NotFound`
into 404 and :class:`Forbidden` into 403); the console asks ``may_*`` and shows its own message.

action                                       admin          member              else, the API answers
-------------------------------------------  -------------  ------------------  ----------------------
see a tenant, its documents and versions,    yes            of their tenants    404 (existence hidden)
  its audit records, its fallback names
edit, delete, roll back, import, export      yes            of their tenants    404 (existence hidden)
manage users and tenants                     yes            no                  403
set or delete a tenant's fallback secrets    yes            no                  403
create a key                                 for anyone     for themself, in    404 (user or tenant
                                                            their tenants       hidden)
list keys                                    anyone's       their own           404 (user hidden)
see or revoke a key                          yes            their own           404 (existence hidden)
manage a key's secrets                       live keys      their own live      404 (existence hidden)
see, change or delete a chat                 yes            their own           404 (existence hidden)
have the server fetch a typed URL, trusted   yes            no (the console     403
  like a document's own                                     fetches public
                                                            addresses only)
demote, disable or delete an account         not their own  no                  403 (own: 409)

Every user manages their own password and their own secrets. An inactive user may do nothing
(both front ends turn them away before they ask). The store keeps its own checks beside these: a
key's owner must be an admin or a member of the key's tenant, and who may save a ``stdio``
upstream is :mod:`mcpgw_sdk.policy`'s, checked on every write with the acting user.

>>> from mcpgw_sdk.records import User
>>> alice = Access(User(id=2, name="alice", role="member", active=True, tenants=("acme",)))
>>> alice.may_edit("acme"), alice.may_edit("globex"), alice.visible_tenants()
(True, False, frozenset({'acme'}))
>>> alice.require_tenant("globex", "document")
Traceback (most recent call last):
...
mcpgw_sdk.errors.NotFound: document 'globex' not found
>>> Access(User(id=1, name="root", role="admin", active=True)).visible_tenants() is None
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .errors import Forbidden, NotFound
from .records import ADMIN, ApiKey, ChatSession, User

#: The actions :meth:`Access.may` and :meth:`Access.require_tenant` take: each names an ``Access.may_<action>(tenant)``.
TENANT_ACTIONS = ("see", "edit", "delete", "roll_back", "import", "export", "read_audit")


class _InTenant(Protocol):
    @property
    def tenant(self) -> str: ...


T = TypeVar("T", bound=_InTenant)


@dataclass(frozen=True)
class Access:
    """What ``user`` may do. Build one per request (API) or per page run (console): it never caches.

    >>> from mcpgw_sdk.records import ApiKey, User
    >>> bob = Access(User(id=3, name="bob", role="member", active=True, tenants=("globex",)))
    >>> bob.may_revoke_key(ApiKey(id=7, name="", prefix="mk_1", user="alice", tenant="globex"))
    False
    >>> bob.may_create_key("globex", "bob"), bob.may_create_key("globex", "alice")
    (True, False)
    """

    user: User

    @property
    def is_admin(self) -> bool:
        """True for an active admin."""
        return self.user.active and self.user.role == ADMIN

    def visible_tenants(self) -> frozenset[str] | None:
        """The tenant names the user may see: ``None`` for admins (all), else their memberships."""
        if self.is_admin:
            return None
        return frozenset(self.user.tenants) if self.user.active else frozenset()

    def visible(self, records: Iterable[T]) -> list[T]:
        """The ``records`` (documents, tenants' keys, audit records: anything with ``.tenant``) the user may see.

        >>> from mcpgw_sdk.records import Document, User
        >>> docs = [Document("acme", "a", {}, 1), Document("globex", "g", {}, 1)]
        >>> [d.name for d in Access(User(1, "al", "member", True, ("acme",))).visible(docs)]
        ['a']
        """
        tenants = self.visible_tenants()
        return [r for r in records if tenants is None or r.tenant in tenants]

    def may_see(self, tenant: str) -> bool:
        """May the user see ``tenant``: the tenant itself, its documents, versions, audit records and fallback names."""
        tenants = self.visible_tenants()
        return tenants is None or tenant in tenants

    def may_edit(self, tenant: str) -> bool:
        """May the user create and change documents of ``tenant`` (stdio upstreams aside: :mod:`.policy`)."""
        return self.may_see(tenant)

    def may_delete(self, tenant: str) -> bool:
        """May the user delete documents of ``tenant``."""
        return self.may_edit(tenant)

    def may_roll_back(self, tenant: str) -> bool:
        """May the user restore an earlier version of a document of ``tenant``."""
        return self.may_edit(tenant)

    def may_import(self, tenant: str) -> bool:
        """May the user import documents (ours, Unla's, OpenAPI) into ``tenant``."""
        return self.may_edit(tenant)

    def may_export(self, tenant: str) -> bool:
        """May the user export the documents of ``tenant``."""
        return self.may_see(tenant)

    def may_read_audit(self, tenant: str) -> bool:
        """May the user read the tool calls made on ``tenant``."""
        return self.may_see(tenant)

    def may(self, action: str, tenant: str) -> bool:
        """``may_<action>(tenant)`` for an action named in :data:`TENANT_ACTIONS` (ValueError for any other).

        >>> from mcpgw_sdk.records import User
        >>> Access(User(1, "al", "member", True, ("acme",))).may("delete", "globex")
        False
        """
        if action not in TENANT_ACTIONS:
            raise ValueError(f"action: {action!r} is not one of {', '.join(TENANT_ACTIONS)}")
        return getattr(self, f"may_{action}")(tenant)

    def may_manage_users(self) -> bool:
        """May the user list, create, change and delete user accounts."""
        return self.is_admin

    def may_manage_tenants(self) -> bool:
        """May the user create, change and delete tenants."""
        return self.is_admin

    def may_remove(self, name: str) -> bool:
        """May the user demote, disable or delete the account ``name`` (never their own: another admin must)."""
        return self.may_manage_users() and name != self.user.name

    def may_act_for(self, name: str) -> bool:
        """May the user list or create API keys owned by the user ``name``."""
        return self.is_admin or (self.user.active and name == self.user.name)

    def may_create_key(self, tenant: str, for_user: str) -> bool:
        """May the user create a key on ``tenant`` owned by ``for_user`` (the store then checks the owner's membership)."""
        return self.may_act_for(for_user) and self.may_see(tenant)

    def may_see_key(self, key: ApiKey) -> bool:
        """May the user see ``key`` (never its secret: nobody may, after its creation)."""
        return self.may_act_for(key.user)

    def may_revoke_key(self, key: ApiKey) -> bool:
        """May the user revoke ``key``."""
        return self.may_see_key(key)

    def may_manage_key_secrets(self, key: ApiKey) -> bool:
        """May the user list, set and delete the secrets of ``key`` (a revoked key has none)."""
        return not key.revoked and self.may_see_key(key)

    def may_set_tenant_secret(self, tenant: str) -> bool:
        """May the user set or delete a fallback secret of ``tenant``."""
        return self.is_admin

    def may_see_chat(self, chat: ChatSession) -> bool:
        """May the user read, rename, continue or delete the chat session ``chat``."""
        return self.may_act_for(chat.user)

    def may_fetch_url(self) -> bool:
        """May the user have the server fetch a URL they typed (a spec to import), trusted as a document's own."""
        return self.is_admin

    def require_admin(self) -> None:
        """Raise Forbidden unless the user is an admin."""
        if not self.is_admin:
            raise Forbidden("only admins may do this")

    def require_tenant(self, tenant: str, what: str = "tenant", *, to: str = "see") -> None:
        """Raise NotFound (not Forbidden: nothing leaks) unless the user may do ``to`` on ``tenant``.

        ``to`` is one of :data:`TENANT_ACTIONS` (``may_<to>`` decides); ``what`` names the object asked for.

        >>> from mcpgw_sdk.records import User
        >>> Access(User(1, "al", "member", True, ("acme",))).require_tenant("acme", "document", to="roll_back")
        """
        if not self.may(to, tenant):
            raise NotFound(f"{what} {tenant!r} not found")

    def require_user(self, name: str) -> None:
        """Raise NotFound unless the user may act for the user ``name`` (themself, or anyone for admins)."""
        if not self.may_act_for(name):
            raise NotFound(f"user {name!r} not found")

    def require_key(self, key: ApiKey, *, secrets: bool = False) -> None:
        """Raise NotFound unless the user may see ``key`` (with ``secrets``: manage its secrets)."""
        allowed = self.may_manage_key_secrets(key) if secrets else self.may_see_key(key)
        if not allowed:
            raise NotFound(f"key {key.id} not found")

    def require_chat(self, chat: ChatSession, asked: str | None = None) -> None:
        """Raise NotFound unless the user may see ``chat``; ``asked`` is the id as the caller spelled it."""
        if not self.may_see_chat(chat):
            raise NotFound(f"chat {chat.id if asked is None else asked!r} not found")

    def require_fetch_url(self) -> None:
        """Raise Forbidden unless the user may have the server fetch a URL."""
        if not self.may_fetch_url():
            raise Forbidden("url: only admins may have the server fetch a spec; send it as spec")
