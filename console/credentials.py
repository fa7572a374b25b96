"""The "My credentials" page's logic: the signed-in user's secrets and their keys' (never the values).

Streamlit-free so tests import it. Every function checks that the owner is the user or one of
their own live keys; a value goes to the store and is never read back.
"""

from __future__ import annotations

from typing import Any

from mcpgw_sdk.errors import Forbidden
from mcpgw_sdk.records import SecretInfo, User
from mcpgw_sdk.store import Store

MY_ACCOUNT = "My account"


def owners(store: Store, user: User) -> dict[str, dict[str, Any]]:
    """Label → store owner arguments: the user's account, then each of their live API keys."""
    found: dict[str, dict[str, Any]] = {MY_ACCOUNT: {"user": user.name}}
    for key in store.list_keys(user=user.name):
        if not key.revoked:
            found[f"API key #{key.id} {key.name or key.prefix + '…'} ({key.tenant})"] = {"key_id": key.id}
    return found


def _owner(store: Store, user: User, label: str) -> dict[str, Any]:
    owner = owners(store, user).get(label)
    if owner is None:
        raise Forbidden(f"{label!r} is not your account or one of your API keys")
    return owner


def names(store: Store, user: User, label: str = MY_ACCOUNT) -> list[SecretInfo]:
    """The names (and change times) of the secrets of ``label``'s owner."""
    return store.list_secrets(**_owner(store, user, label))


def put(store: Store, user: User, label: str, name: str, value: str) -> SecretInfo:
    """Set or replace a secret of ``label``'s owner."""
    return store.set_secret(name.strip(), value, author=user.name, **_owner(store, user, label))


def delete(store: Store, user: User, label: str, name: str) -> None:
    """Delete a secret of ``label``'s owner."""
    store.delete_secret(name, **_owner(store, user, label))
