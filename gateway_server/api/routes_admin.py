"""Users and tenants (``/users``, ``/tenants``): admins manage them; members see their own tenants."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from mcpgw_sdk.errors import ConfigError, ConflictError, NotFound
from mcpgw_sdk.records import ADMIN, DEFAULT_ROLE

from .common import access, caller, encode, json_body, store

bp = Blueprint("admin", __name__)


def _check_tenants_exist(names) -> None:
    missing = []
    for name in names:
        try:
            store().get_tenant(name)
        except NotFound:
            missing.append(f"tenants: tenant {name!r} does not exist")
    if missing:
        raise ConfigError(missing[0], missing)


@bp.get("/users")
def list_users():
    """Every user (admins only)."""
    access().require_admin()
    return jsonify([encode(u) for u in store().list_users()])


@bp.post("/users")
def create_user():
    """Create a user (admins only)."""
    access().require_admin()
    data = json_body("UserCreate")
    _check_tenants_exist(data.get("tenants", ()))
    user = store().create_user(data["name"], data["password"], role=data.get("role", DEFAULT_ROLE),
                               tenants=data.get("tenants", ()), active=data.get("active", True))
    return jsonify(encode(user)), 201, {"Location": f"{request.root_path}/api/v1/users/{user.name}"}


@bp.get("/users/<name>")
def get_user(name):
    """One user (admins only)."""
    access().require_admin()
    return jsonify(encode(store().get_user(name)))


@bp.patch("/users/<name>")
def update_user(name):
    """Change a user's role, active flag, tenants or password (admins only)."""
    access().require_admin()
    data = json_body("UserUpdate")
    store().get_user(name)
    if name == caller().name:
        if data.get("role", ADMIN) != ADMIN or data.get("active", True) is False:
            raise ConflictError("you cannot demote or disable yourself; ask another admin")
        if "password" in data:
            raise ConflictError("change your own password with POST /api/v1/me/password (it needs the current one)")
    if "tenants" in data:
        _check_tenants_exist(data["tenants"])
    if "password" in data:
        store().set_password(name, data["password"])
    user = store().update_user(name, role=data.get("role"), active=data.get("active"), tenants=data.get("tenants"))
    if "password" in data or data.get("active") is False:
        current_app.extensions["mcpgw"]["tokens"].revoke_user(name)
    return jsonify(encode(user))


@bp.delete("/users/<name>")
def delete_user(name):
    """Delete a user and revoke their keys (admins only; not yourself)."""
    access().require_admin()
    store().get_user(name)
    if not access().may_remove(name):
        raise ConflictError("you cannot delete yourself; ask another admin")
    store().delete_user(name)
    # a user later created with the same name must not inherit these tokens
    current_app.extensions["mcpgw"]["tokens"].revoke_user(name)
    return "", 204


@bp.get("/tenants")
def list_tenants():
    """Tenants: all for admins, the caller's own for members."""
    allowed = access()
    return jsonify([encode(t) for t in store().list_tenants() if allowed.may_see(t.name)])


@bp.post("/tenants")
def create_tenant():
    """Create a tenant (admins only); the prefix defaults to ``/name``."""
    access().require_admin()
    data = json_body("TenantCreate")
    tenant = store().create_tenant(data["name"], prefix=data.get("prefix"), description=data.get("description", ""))
    return jsonify(encode(tenant)), 201, {"Location": f"{request.root_path}/api/v1/tenants/{tenant.name}"}


@bp.get("/tenants/<name>")
def get_tenant(name):
    """One tenant (members: only their own)."""
    access().require_tenant(name)
    return jsonify(encode(store().get_tenant(name)))


@bp.patch("/tenants/<name>")
def update_tenant(name):
    """Change a tenant's prefix or description (admins only)."""
    access().require_admin()
    data = json_body("TenantUpdate")
    tenant = store().update_tenant(name, prefix=data.get("prefix"), description=data.get("description"))
    return jsonify(encode(tenant))


@bp.delete("/tenants/<name>")
def delete_tenant(name):
    """Delete a tenant without live documents (admins only)."""
    access().require_admin()
    store().delete_tenant(name)
    return "", 204
