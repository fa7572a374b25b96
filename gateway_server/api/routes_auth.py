"""Login, token refresh and the caller's own account (``/auth/*``, ``/me``)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from mcpgw_sdk.errors import AuthError, Forbidden, NotFound

from .auth import RateLimited
from .common import caller, encode, json_body, store

bp = Blueprint("auth", __name__)


def _services():
    return current_app.extensions["mcpgw"]


@bp.post("/auth/login")
def login():
    """Exchange a user name and password for tokens (failed attempts rate limited per address and name)."""
    data = json_body("Login")
    name = data["username"]
    address = request.remote_addr or "-"
    limiter = _services()["limiter"]
    limiter.check(address, name)
    try:
        user = store().authenticate(name, data["password"])
    except AuthError:
        limiter.failed(address, name)
        raise
    return jsonify(_services()["tokens"].issue(user.name))


@bp.post("/auth/refresh")
def refresh():
    """Exchange a refresh token for a new token pair (the user must still exist and be active)."""
    data = json_body("Refresh")
    claims = _services()["tokens"].verify(data["refresh_token"], kind="refresh")
    try:
        user = store().get_user(claims["sub"])
    except NotFound:
        raise AuthError("the user of this token no longer exists") from None
    if not user.active:
        raise AuthError("the user of this token is disabled")
    return jsonify(_services()["tokens"].issue(user.name))


@bp.get("/me")
def me():
    """The caller's account."""
    return jsonify(encode(caller()))


@bp.post("/me/password")
def change_password():
    """Change the caller's password (the current one is required); earlier tokens die, new ones are returned."""
    data = json_body("PasswordChange")
    try:
        store().authenticate(caller().name, data["current_password"])
    except AuthError:
        raise Forbidden("current_password: is not the current password") from None
    store().set_password(caller().name, data["new_password"])
    _services()["tokens"].revoke_user(caller().name)
    return jsonify(_services()["tokens"].issue(caller().name))


__all__ = ["bp", "RateLimited"]
