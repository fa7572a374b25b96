"""The console's side of access: signing in, the lists a page offers, and how a refusal reads here.

Who may see or change what is decided once, in :mod:`mcpgw_sdk.access` (the management API asks
the same policy); this module only asks it. Where the API answers 404 so that nothing leaks, the
console, which only offers what the user may see, names the reason instead.
"""

from __future__ import annotations

from mcpgw_sdk.access import Access
from mcpgw_sdk.errors import AuthError, Forbidden
from mcpgw_sdk.records import ApiKey, Document, User
from mcpgw_sdk.store import AccountStore, ConfigStore, Store


def login(store: ConfigStore, name: str, password: str) -> User:
    """Return the user whose credentials these are; AuthError with a readable message otherwise."""
    if not name.strip() or not password:
        raise AuthError("Enter a user name and a password.")
    try:
        if not isinstance(store, AccountStore):  # a yaml:// directory has no users
            raise AuthError(name)
        return store.authenticate(name.strip(), password)
    except AuthError:
        raise AuthError("Unknown user or wrong password.") from None


def visible_tenants(store: Store, user: User) -> list[str]:
    """Tenant names the user may choose: every tenant for admins, their memberships (sorted) for members."""
    tenants = Access(user).visible_tenants()
    if tenants is None:
        return [t.name for t in store.list_tenants()]
    return sorted(tenants)


def visible_documents(store: Store, user: User, *, include_deleted: bool = False) -> list[Document]:
    """Documents the user may see, ordered by tenant and name."""
    return Access(user).visible(store.list_documents(include_deleted=include_deleted))


def visible_keys(store: Store, user: User) -> list[ApiKey]:
    """API keys the user may see: every key for admins, their own for members."""
    if Access(user).is_admin:
        return store.list_keys()
    return store.list_keys(user=user.name)


def not_member(user: User, tenant: str) -> Forbidden:
    """How the console refuses work on a tenant: the reason after ``tenant:`` goes next to that field."""
    return Forbidden(f"tenant: {user.name} is not a member of tenant {tenant!r}")


def check_tenant(user: User, tenant: str, *, to: str = "edit") -> None:
    """Raise :func:`not_member`'s Forbidden unless the user may do ``to`` (``edit``, ``delete``…) on ``tenant``."""
    if not Access(user).may(to, tenant):
        raise not_member(user, tenant)


def check_key(user: User, key: ApiKey) -> None:
    """Raise Forbidden unless the user may revoke ``key``."""
    if not Access(user).may_revoke_key(key):
        raise Forbidden(f"key: {key.name or key.prefix} belongs to another user")
