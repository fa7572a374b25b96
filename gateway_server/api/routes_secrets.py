"""Per-user secrets (``/me/secrets``, ``/keys/<id>/secrets``, ``/tenants/<name>/secrets``): write-only.

Values go in (``PUT … {"value": "…"}``) and never come back: lists carry names and times only.
Members manage their own secrets and those of their own keys; admins any key's, and the
tenant fallbacks (members of a tenant may list its fallback names). See docs/credentials.md.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from mcpgw_sdk.names import check_name

from .common import access, caller, check_id, encode, json_body, store

bp = Blueprint("secrets", __name__)


def _own_key(key_id: int) -> int:
    """The key's id when the caller owns it (admins: any key) and it is live; 404 otherwise (nothing leaks)."""
    key = store().get_key(check_id(key_id, "key"))
    access().require_key(key, secrets=True)
    return key.id


def _infos(infos) -> list[dict]:
    return [encode(info) for info in infos]


def _put(name: str, **owner) -> tuple[str, int]:
    check_name("name", name)
    value = json_body("SecretValue")["value"]
    store().set_secret(name, value, author=caller().name, **owner)
    return "", 204


def _delete(name: str, **owner) -> tuple[str, int]:
    check_name("name", name)
    store().delete_secret(name, **owner)
    return "", 204


@bp.get("/me/secrets")
def list_my_secrets():
    """The names of the caller's own secrets (never the values)."""
    return jsonify(_infos(store().list_secrets(user=caller().name)))


@bp.put("/me/secrets/<secret>")
def put_my_secret(secret):
    """Set or replace one of the caller's secrets."""
    return _put(secret, user=caller().name)


@bp.delete("/me/secrets/<secret>")
def delete_my_secret(secret):
    """Delete one of the caller's secrets."""
    return _delete(secret, user=caller().name)


@bp.get("/keys/<int:key_id>/secrets")
def list_key_secrets(key_id):
    """The names of a key's secrets (the caller's own keys; admins any)."""
    return jsonify(_infos(store().list_secrets(key_id=_own_key(key_id))))


@bp.put("/keys/<int:key_id>/secrets/<secret>")
def put_key_secret(key_id, secret):
    """Set or replace a secret of a key (used when a call comes with that key, before its owner's)."""
    return _put(secret, key_id=_own_key(key_id))


@bp.delete("/keys/<int:key_id>/secrets/<secret>")
def delete_key_secret(key_id, secret):
    """Delete a secret of a key."""
    return _delete(secret, key_id=_own_key(key_id))


@bp.get("/tenants/<name>/secrets")
def list_tenant_secrets(name):
    """The names of a tenant's fallback secrets (admins; members of the tenant)."""
    access().require_tenant(name)
    return jsonify(_infos(store().list_secrets(tenant=name)))


@bp.put("/tenants/<name>/secrets/<secret>")
def put_tenant_secret(name, secret):
    """Set or replace a tenant's fallback secret, used when the caller has none of that name (admins)."""
    access().require_admin()
    return _put(secret, tenant=name)


@bp.delete("/tenants/<name>/secrets/<secret>")
def delete_tenant_secret(name, secret):
    """Delete a tenant's fallback secret (admins)."""
    access().require_admin()
    return _delete(secret, tenant=name)
