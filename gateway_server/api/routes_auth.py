"""Login, token refresh, logout and the caller's own account (``/auth/*``, ``/me``)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from mcpgw_sdk.errors import AuthError, Forbidden, NotFound
from mcpgw_sdk.store import AccountStore

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
    accounts = store()
    try:
        if not isinstance(accounts, AccountStore):  # a yaml:// directory has no users
            raise AuthError("invalid user name or password")
        user = accounts.authenticate(name, data["password"])
    except AuthError:
        limiter.failed(address, name)
        raise
    return jsonify(_services()["tokens"].issue(user.name))


@bp.post("/auth/refresh")
def refresh():
    """Exchange a refresh token for a new token pair (the user must still exist and be active).

    A refresh token is good for one refresh: it is revoked as it is used, so a copy that leaked
    stops working once its owner refreshes (and the owner notices when the thief refreshed first).
    """
    data = json_body("Refresh")
    tokens = _services()["tokens"]
    claims = tokens.verify(data["refresh_token"], kind="refresh")
    accounts = store()
    try:
        if not isinstance(accounts, AccountStore):
            raise NotFound(claims["sub"])
        user = accounts.get_user(claims["sub"])
    except NotFound:
        raise AuthError("the user of this token no longer exists") from None
    if not user.active:
        raise AuthError("the user of this token is disabled")
    if not tokens.revoke(claims):  # a concurrent refresh with the same token won
        raise AuthError("the token was revoked (logged out, or a refresh token already used)")
    return jsonify(tokens.issue(user.name))


@bp.post("/auth/logout")
def logout():
    """Revoke the refresh token given (and the access token sent with it); ``all`` ends every session.

    Needs no access token (one may have expired): the refresh token itself proves the session.
    With ``"all": true`` every token the user holds, on every device, stops working.
    """
    data = json_body("Logout")
    tokens = _services()["tokens"]
    claims = tokens.verify(data["refresh_token"], kind="refresh")
    scheme, _, access = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and access.strip():
        try:
            access_claims = tokens.verify(access.strip())
        except AuthError:
            access_claims = None  # expired or already void: nothing left to revoke
        if access_claims is not None and access_claims["sub"] == claims["sub"]:
            tokens.revoke(access_claims)
    tokens.revoke(claims)
    if data.get("all"):
        tokens.revoke_user(claims["sub"])
    return "", 204


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
