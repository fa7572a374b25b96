"""API keys for MCP endpoints (``/keys``): members manage their own keys in their tenants."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, jsonify, request

from mcpgw_sdk.errors import ConfigError

from .common import access, caller, check_id, encode, json_body, store

bp = Blueprint("keys", __name__)


def _visible_key(key_id: int):
    key = store().get_key(check_id(key_id, "key"))
    access().require_key(key)
    return key


@bp.get("/keys")
def list_keys():
    """Keys, newest first: the caller's own; admins see all, or one user's with ``?user=``."""
    allowed = access()
    user = request.args.get("user")
    if user is not None:
        allowed.require_user(user)
    elif not allowed.is_admin:
        user = caller().name
    tenant = request.args.get("tenant")
    if tenant is not None:
        allowed.require_tenant(tenant)
    return jsonify([encode(k) for k in store().list_keys(user=user, tenant=tenant)])


@bp.post("/keys")
def create_key():
    """Create a key; the secret is in this answer only. Admins may create keys for other users."""
    data = json_body("KeyCreate")
    user = data.get("user") or caller().name
    access().require_user(user)
    access().require_tenant(data["tenant"])
    store().get_tenant(data["tenant"])
    expires_at = None
    if data.get("expires_at"):
        try:
            expires_at = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError("expires_at: is not an ISO 8601 date-time") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        if expires_at <= datetime.now(timezone.utc):
            raise ConfigError("expires_at: is in the past")
    key, secret = store().create_key(user, data["tenant"], name=data.get("name", ""),
                                     servers=data.get("servers", ()), tools=data.get("tools", ()),
                                     expires_at=expires_at)
    return jsonify({**encode(key), "secret": secret}), 201, {"Location": f"{request.root_path}/api/v1/keys/{key.id}"}


@bp.get("/keys/<int:key_id>")
def get_key(key_id):
    """One key (without its secret)."""
    return jsonify(encode(_visible_key(key_id)))


@bp.post("/keys/<int:key_id>/revoke")
def revoke_key(key_id):
    """Revoke a key (it stays listed, marked revoked); gateways drop it within one reload interval."""
    _visible_key(key_id)
    store().revoke_key(key_id)
    return jsonify(encode(store().get_key(key_id)))
