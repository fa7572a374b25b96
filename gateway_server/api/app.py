"""The management API's Flask app factory, its authentication hook and its one error mapping.

Every error leaves as ``{"error": {"code", "message", "details"}}``; the mapping
from mcpgw exceptions to HTTP statuses lives here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from mcpgw_sdk.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    Forbidden,
    McpgwError,
    MigrationRequired,
    NotFound,
    ReadOnlyError,
    SecretError,
    StorageError,
)
from mcpgw_sdk.opening import open_store
from mcpgw_sdk.store import AccountStore, ConfigStore

from ..statuses import standard_reasons
from .auth import ApiState, LoginLimiter, RateLimited, SharedLoginLimiter, TokenService, load_secret
from .common import check_request_text

log = logging.getLogger("mcpgw.api")
PREFIX = "/api/v1"
#: Endpoints reachable without a token.
PUBLIC_ENDPOINTS = {"auth.login", "auth.refresh", "auth.logout", "meta.openapi"}
#: Largest request body (imports of many documents included); 413 above.
MAX_BODY_BYTES = 32 * 1024 * 1024

#: (exception class, HTTP status, error code) — the first match wins, so subclasses come first.
ERROR_MAP: list[tuple[type[Exception], int, str]] = [
    (SecretError, 503, "secrets_unavailable"),  # no secrets_key on this server, or a sealed value it cannot open
    (ConfigError, 422, "invalid"),
    (NotFound, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (AuthError, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (ReadOnlyError, 409, "read_only"),
    (MigrationRequired, 503, "migration_required"),
    (StorageError, 503, "unavailable"),
]


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """The JSON shape of every error answer."""
    return {"error": {"code": code, "message": message, "details": details or []}}


def _mcpgw_error(exc: McpgwError):
    status, code = next(((st, co) for cls, st, co in ERROR_MAP if isinstance(exc, cls)), (500, "internal"))
    details: list[Any] = []
    message = str(exc)
    if isinstance(exc, ConfigError):
        details = list(exc.errors)
        message = exc.errors[0] if len(exc.errors) == 1 else f"{len(exc.errors)} problems: " + "; ".join(exc.errors)
    elif isinstance(exc, ConflictError):
        details = [{"base_version": exc.base_version, "current_version": exc.current_version}]
    headers = {"WWW-Authenticate": 'Bearer realm="mcpgw"'} if status == 401 else {}
    if status >= 500:
        log.error("%s %s: %s", request.method, request.path, message)
    return jsonify(error_body(code, message, details)), status, headers


def _http_error(exc: HTTPException):
    resp = exc.get_response()
    code = (exc.name or "error").lower().replace(" ", "_")
    body = jsonify(error_body(code, exc.description or exc.name or "error"))
    body.status_code = exc.code or 500
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in resp.headers:
            body.headers[name] = resp.headers[name]
    return body


def _rate_limited(exc: RateLimited):
    return (jsonify(error_body("rate_limited", str(exc))), 429, {"Retry-After": str(exc.retry_after)})


def _unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return jsonify(error_body("internal", "internal server error")), 500


def _authenticate() -> None:
    if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("a bearer token is required (POST /api/v1/auth/login)")
    claims = current_app.extensions["mcpgw"]["tokens"].verify(token.strip())
    store: ConfigStore = current_app.extensions["mcpgw"]["store"]
    try:
        if not isinstance(store, AccountStore):  # a yaml:// directory has no users
            raise NotFound(claims["sub"])
        user = store.get_user(claims["sub"])
    except NotFound:
        raise AuthError("the user of this token no longer exists") from None
    if not user.active:
        raise AuthError("the user of this token is disabled")
    g.user = user


def _private(response):
    # every answer is about one caller (tokens, documents, keys): never cache it anywhere
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def create_app(*, store: ConfigStore | None = None, store_url: str | None = None, jwt_secret: str | None = None,
               login_limit: int = 10) -> Flask:
    """Build the management API app on ``store`` (or a store opened from ``store_url``).

    >>> app = create_app(store_url="sqlite:///mcpgw.db")  # doctest: +SKIP
    """
    if store is None:
        store = open_store(store_url)
    app = Flask("mcpgw.api")
    app.wsgi_app = standard_reasons(app.wsgi_app)  # "401 Unauthorized", not werkzeug's "401 UNAUTHORIZED"
    app.json.sort_keys = False
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    state = ApiState.of(store)
    app.extensions["mcpgw"] = {
        "store": store,
        "tokens": TokenService(load_secret(state, jwt_secret), state=state),
        # counted in the database when there is one, so every worker and replica shares the limit
        "limiter": SharedLoginLimiter(state, limit=login_limit) if state is not None else LoginLimiter(limit=login_limit),
    }
    from . import (
        routes_activity,
        routes_admin,
        routes_auth,
        routes_documents,
        routes_keys,
        routes_secrets,
        routes_transfer,
    )
    from .openapi import bp as meta_bp

    for module in (routes_auth, routes_admin, routes_keys, routes_secrets, routes_documents, routes_transfer,
                   routes_activity):
        app.register_blueprint(module.bp, url_prefix=PREFIX)
    app.register_blueprint(meta_bp, url_prefix=PREFIX)
    app.before_request(check_request_text)
    app.before_request(_authenticate)
    app.after_request(_private)
    app.register_error_handler(McpgwError, _mcpgw_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RateLimited, _rate_limited)
    app.register_error_handler(Exception, _unexpected)
    return app
