"""Who sees what in the console: login and role-aware views of the store.

Admins see every tenant, document, user and key. Members see only the documents
of their tenants and only their own keys.
"""

from __future__ import annotations

from mcpgw_sdk.errors import AuthError, Forbidden
from mcpgw_sdk.records import ApiKey, Document, User
from mcpgw_sdk.store import Store


def login(store: Store, name: str, password: str) -> User:
    """Return the user whose credentials these are; AuthError with a readable message otherwise."""
    if not name.strip() or not password:
        raise AuthError("Enter a user name and a password.")
    try:
        return store.authenticate(name.strip(), password)
    except AuthError:
        raise AuthError("Unknown user or wrong password.") from None


def is_admin(user: User) -> bool:
    """True for the admin role."""
    return user.role == "admin"


def visible_tenants(store: Store, user: User) -> list[str]:
    """Tenant names the user may see: all for admins, their memberships for members."""
    if is_admin(user):
        return [t.name for t in store.list_tenants()]
    return sorted(user.tenants)


def can_edit(user: User, tenant: str) -> bool:
    """True when the user may read and change documents of ``tenant``."""
    return is_admin(user) or tenant in user.tenants


def check_tenant(user: User, tenant: str) -> None:
    """Raise Forbidden unless the user may work on ``tenant``."""
    if not can_edit(user, tenant):
        raise Forbidden(f"tenant: {user.name} is not a member of tenant {tenant!r}")


def visible_documents(store: Store, user: User, *, include_deleted: bool = False) -> list[Document]:
    """Documents the user may see, ordered by tenant and name."""
    docs = store.list_documents(include_deleted=include_deleted)
    return [d for d in docs if can_edit(user, d.tenant)]


def visible_keys(store: Store, user: User) -> list[ApiKey]:
    """API keys the user may see: every key for admins, their own for members."""
    if is_admin(user):
        return store.list_keys()
    return store.list_keys(user=user.name)


def check_key(user: User, key: ApiKey) -> None:
    """Raise Forbidden unless the user may revoke ``key``."""
    if not is_admin(user) and key.user != user.name:
        raise Forbidden(f"key: {key.name or key.prefix} belongs to another user")
