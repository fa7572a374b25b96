"""Who may call an MCP endpoint: API keys and OAuth 2.1 bearer tokens (a pure module).

The gateway core calls :func:`authenticate` once per HTTP request with the router's
``auth`` block, the request headers and the snapshot's :class:`KeyIndex`. It
returns a :class:`Principal` (or ``None`` for an open router) or raises
:class:`AuthFailure` carrying the status, ``WWW-Authenticate`` header and body to
send. Nothing here touches Flask or the database; the only IO is the JWKS fetch
of :class:`OAuthVerifier`, cached by PyJWT and made through the outbound guard.

>>> authenticate(Auth(mode="none"), {}, keys=KeyIndex(()), tenant="t",
...              resource_url="http://h/t/mcp", metadata_url="http://h/.well-known/x", oauth=None) is None
True
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import jwt

from mcpgw_sdk.config_model import AUTH_MODES, Auth, default
from mcpgw_sdk.documents import auth_errors
from mcpgw_sdk.records import ApiKey
from mcpgw_sdk.security import hash_secret

__all__ = ["CREDENTIAL_HEADERS", "AuthFailure", "KeyIndex", "OAuthVerifier", "Principal", "auth_config_errors",
           "authenticate", "backend_headers", "hash_secret", "metadata_path", "protected_resource_metadata"]

MODES = AUTH_MODES
#: The mode of a router without ``auth`` (the model's default).
NO_AUTH = default(Auth, "mode")
#: Signature algorithms accepted from an issuer (never ``none``, never HMAC: the key is public).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user (or token subject), the key used, and what the caller may see.

    ``tools``/``servers`` ``None`` means every tool/server of the tenant; the core
    filters ``tools/list`` and refuses ``tools/call`` outside them.
    """

    user: str | None
    key_id: int | None
    tenant: str
    tools: frozenset[str] | None = None
    servers: frozenset[str] | None = None
    scopes: frozenset[str] = frozenset()
    #: The verified OAuth bearer token itself (``None`` for API keys): backends with ``tokenExchange`` trade it.
    token: str | None = field(default=None, repr=False, compare=False)

    def allows(self, server: str, tool: str) -> bool:
        """True when this caller may see and call ``tool`` of ``server``."""
        if self.servers is not None and server not in self.servers:
            return False
        return self.tools is None or tool in self.tools


class AuthFailure(Exception):
    """Raised when a request to an MCP endpoint is not allowed; carries the HTTP answer to send.

    ``status`` is 401 (no or bad credentials) or 403 (valid token lacking a scope);
    ``www_authenticate`` the ``WWW-Authenticate`` header value; ``body`` a JSON object.
    """

    def __init__(self, status: int, error: str, description: str, *, www_authenticate: str):
        self.status = status
        self.error = error
        self.www_authenticate = www_authenticate
        self.body = {"error": error, "error_description": description}
        super().__init__(f"{status} {error}: {description}")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class KeyIndex:
    """API keys of one config snapshot, indexed by the SHA-256 of their secret.

    >>> KeyIndex([]).lookup("nope", datetime.now(timezone.utc)) is None
    True
    """

    def __init__(self, keys: Iterable[ApiKey]):
        self._by_hash = {key.secret_hash.lower(): key for key in keys if key.secret_hash}

    def __len__(self) -> int:
        return len(self._by_hash)

    def lookup(self, secret: str, now: datetime | None = None) -> ApiKey | None:
        """The live key whose secret this is (not revoked, not expired at ``now``), else ``None``."""
        digest = hash_secret(secret)
        key = self._by_hash.get(digest)
        # compare_digest keeps the final comparison constant-time for the matching entry
        if key is None or not hmac.compare_digest(key.secret_hash.lower(), digest):
            return None
        if key.revoked:
            return None
        if key.expires_at is not None and _utc(key.expires_at) <= _utc(now or datetime.now(timezone.utc)):
            return None
        return key


def _challenge(*, metadata_url: str | None = None, error: str | None = None, description: str | None = None,
               scope: str | None = None) -> str:
    parts = ['realm="mcpgw"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        # the text may quote the token (its kid): keep the header one safe, printable line
        parts.append('error_description="{}"'.format(re.sub(r'[^\x20-\x7e]|["\\]', "'", description)[:200]))
    if scope:
        parts.append(f'scope="{scope}"')
    if metadata_url:
        parts.append(f'resource_metadata="{metadata_url}"')
    return "Bearer " + ", ".join(parts)


#: The scheme of an API-key router's challenge. Not ``Bearer``: MCP clients answer a Bearer challenge
#: with OAuth discovery (RFC 9728, then RFC 8414), a dead end on a router that takes only keys.
KEY_SCHEME = "ApiKey"


def _key_challenge(*, error: str | None = None) -> str:
    """``ApiKey realm="mcpgw", header="X-API-Key"`` (plus ``error``): send a key, there is no OAuth here."""
    parts = ['realm="mcpgw"', 'header="X-API-Key"']
    if error:
        parts.append(f'error="{error}"')
    return f"{KEY_SCHEME} " + ", ".join(parts)


def bearer_token(headers: dict[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (case-insensitive scheme), else ``None``."""
    value = headers.get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


_MAX_METADATA_BYTES = 1024 * 1024


def _guarded_get(url: str, *, literal_hosts: frozenset, timeout: float, max_redirects: int,
                 headers: dict[str, str] | None = None) -> Any:
    """GET through the outbound guard; OSError (refused, unreachable, an error status) says why."""
    from .backends.guard import fetch

    resp = fetch(url, literal_hosts=literal_hosts, timeout=timeout, max_bytes=_MAX_METADATA_BYTES,
                 max_redirects=max_redirects, headers=headers)
    if resp.status != 200:
        raise OSError(f"{url} answered HTTP {resp.status}")
    return resp


class _GuardedJwkClient(jwt.PyJWKClient):
    """:class:`jwt.PyJWKClient` fetching through the outbound guard: no redirects, 1 MiB at most.

    ``literal_hosts`` are the authorities the router's ``auth`` block names; any other
    JWKS host must be public (or in the operator's allow-list).
    """

    def __init__(self, uri: str, *, literal_hosts: frozenset, **kwargs: Any):
        super().__init__(uri, **kwargs)
        self.literal_hosts = literal_hosts

    def fetch_data(self) -> Any:
        """Fetch and return the JWK Set (cached as PyJWT does); PyJWKClientConnectionError on failure."""
        try:
            resp = _guarded_get(self.uri, literal_hosts=self.literal_hosts, timeout=self.timeout, max_redirects=0,
                                headers=dict(self.headers or {}))
            jwk_set = resp.json()
        except (OSError, ValueError) as exc:
            raise jwt.PyJWKClientConnectionError(f"cannot fetch the JWKS: {exc}") from None
        check = getattr(self, "_as_jwk_set_payload", None)  # PyJWT >= 2.11 validates before caching
        if check is not None:
            jwk_set = check(jwk_set)
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(jwk_set)
        self._last_successful_fetch = time.monotonic()
        return jwk_set


class OAuthVerifier:
    """Validates bearer JWTs of one router's issuer (resource-server side of OAuth 2.1).

    Built from the router's ``auth`` block: ``issuer``, ``jwksUri`` (else discovered
    from the issuer's metadata), ``audience`` (else the resource URL) and
    ``scopes`` (all required). Keys are fetched with PyJWT's :class:`jwt.PyJWKClient`
    and cached; an unknown ``kid`` triggers one refetch before the token is refused.
    Build one per router per snapshot and reuse it.
    """

    def __init__(self, *, issuer: str | None = None, jwks_uri: str | None = None,
                 audience: str | list[str] | None = None, scopes: Iterable[str] = (),
                 leeway: float = 30.0, timeout: float = 5.0, cache_seconds: int = 300):
        if not issuer and not jwks_uri:
            raise ValueError("auth.issuer or auth.jwksUri is required for mode oauth2")
        self.issuer = issuer
        self.audience = audience
        self.scopes = tuple(scopes)
        self.leeway = leeway
        self.timeout = timeout
        self._cache_seconds = cache_seconds
        self._jwks_uri = jwks_uri
        self._client: jwt.PyJWKClient | None = None
        from .backends.guard import authorities

        # The issuer and JWKS hosts the auth block names; a jwks_uri discovered elsewhere must be public.
        self._literal_hosts = authorities([issuer or "", jwks_uri or ""])

    @classmethod
    def from_config(cls, auth: Auth, **kwargs: Any) -> OAuthVerifier:
        """Build from a router's ``auth`` block (``issuer``, ``jwksUri``, ``audience``, ``scopes``)."""
        return cls(issuer=auth.issuer, jwks_uri=auth.jwks_uri, audience=list(auth.audience) or None,
                   scopes=_scopes(auth), **kwargs)

    def _discover(self) -> str:
        base = self.issuer.rstrip("/")
        last: Exception | None = None
        for suffix in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            try:
                resp = _guarded_get(base + suffix, literal_hosts=self._literal_hosts, timeout=self.timeout,
                                    max_redirects=3)
                meta = json.loads(resp.text)
                if isinstance(meta, dict) and isinstance(meta.get("jwks_uri"), str) and meta["jwks_uri"]:
                    return meta["jwks_uri"]
            except Exception as exc:  # noqa: BLE001 - try the next well-known location
                last = exc
        raise jwt.PyJWKClientError(f"no jwks_uri in the metadata of issuer {self.issuer}: {last}")

    def _jwk_client(self) -> jwt.PyJWKClient:
        if self._client is None:
            uri = self._jwks_uri or self._discover()
            self._client = _GuardedJwkClient(uri, literal_hosts=self._literal_hosts, cache_keys=True,
                                             lifespan=self._cache_seconds, timeout=self.timeout)
        return self._client

    def verify(self, token: str, *, resource_url: str) -> dict[str, Any]:
        """Return the token's claims, or raise :class:`jwt.PyJWTError` / :class:`jwt.PyJWKClientError`."""
        signing_key = self._jwk_client().get_signing_key_from_jwt(token)
        audience = self.audience or resource_url
        options = {"require": ["exp"], "verify_iss": bool(self.issuer)}
        return jwt.decode(token, signing_key.key, algorithms=ALGORITHMS, audience=audience,
                          issuer=self.issuer or None, leeway=self.leeway, options=options)


def token_scopes(claims: dict[str, Any]) -> frozenset[str]:
    """Scopes granted by a token: ``scope`` (space-separated) or ``scp`` (list or string)."""
    granted: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, (list, tuple)):
            granted.update(str(item) for item in value)
    return frozenset(granted)


def _authenticate_key(headers: dict[str, str], *, keys: KeyIndex, tenant: str, now: datetime | None) -> Principal:
    secret = headers.get("x-api-key", "").strip() or bearer_token(headers)
    if not secret:
        raise AuthFailure(401, "invalid_request", "an API key is required (Authorization: Bearer or X-API-Key)",
                          www_authenticate=_key_challenge())
    key = keys.lookup(secret, now)
    if key is None or key.tenant != tenant:
        # one answer for unknown, revoked, expired and other-tenant keys: nothing to probe
        raise AuthFailure(401, "invalid_token", "the API key is unknown, revoked or expired",
                          www_authenticate=_key_challenge(error="invalid_token"))
    return Principal(user=key.user, key_id=key.id, tenant=tenant,
                     tools=frozenset(key.tools) if key.tools else None,
                     servers=frozenset(key.servers) if key.servers else None)


def _scopes(auth: Auth) -> tuple[str, ...]:
    """``auth.scopes``: a space-separated string or a list."""
    scopes = auth.scopes or ()
    return tuple(scopes.split() if isinstance(scopes, str) else scopes)


def _authenticate_oauth(auth: Auth, headers: dict[str, str], *, tenant: str, resource_url: str,
                        metadata_url: str, oauth: OAuthVerifier | None) -> Principal:
    token = bearer_token(headers)
    if not token:
        raise AuthFailure(401, "invalid_request", "a bearer token is required",
                          www_authenticate=_challenge(metadata_url=metadata_url))
    verifier = oauth or OAuthVerifier.from_config(auth)
    try:
        claims = verifier.verify(token, resource_url=resource_url)
    except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
        description = str(exc) or type(exc).__name__
        raise AuthFailure(401, "invalid_token", description,
                          www_authenticate=_challenge(metadata_url=metadata_url, error="invalid_token",
                                                      description=description)) from None
    granted = token_scopes(claims)
    missing = [scope for scope in verifier.scopes if scope not in granted]
    if missing:
        scope = " ".join(verifier.scopes)
        raise AuthFailure(403, "insufficient_scope", f"the token lacks scope {' '.join(missing)}",
                          www_authenticate=_challenge(metadata_url=metadata_url, error="insufficient_scope",
                                                      scope=scope))
    return Principal(user=str(claims.get("sub")) if claims.get("sub") is not None else None, key_id=None,
                     tenant=tenant, scopes=granted, token=token)


#: Request headers that carry a client's credential for the gateway itself.
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def backend_headers(auth: Auth | None, headers: dict[str, str]) -> dict[str, str]:
    """The request headers backends may see: without the gateway credential when the router checks one.

    A router with ``auth.mode`` ``apikey`` or ``oauth2`` consumes ``Authorization`` and
    ``X-API-Key``: they are the caller's key or token *for the gateway*, so templates
    (``{{ request.headers.authorization }}``) and ``forward_headers`` must never pass them on.
    An open router keeps them (Unla documents forward the client's own backend token that way).
    ``headers`` have lower-case names; the same dict is returned when nothing is removed.

    >>> backend_headers(Auth(mode="apikey"), {"x-api-key": "k", "accept": "*/*"})
    {'accept': '*/*'}
    """
    if auth is not None and auth.mode in ("apikey", "oauth2") and any(name in headers for name in CREDENTIAL_HEADERS):
        return {k: v for k, v in headers.items() if k not in CREDENTIAL_HEADERS}
    return headers


def authenticate(auth: Auth | None, headers: dict[str, str], *, keys: KeyIndex, tenant: str,
                 resource_url: str, metadata_url: str, oauth: OAuthVerifier | None = None,
                 now: datetime | None = None) -> Principal | None:
    """Decide whether a request may reach a router; ``headers`` have lower-case names.

    Mode ``none`` (or no ``auth``) → ``None`` (open). Mode ``apikey`` → the key's
    Principal or 401 challenging with ``ApiKey realm="mcpgw", header="X-API-Key"`` (not
    ``Bearer``, which sends MCP clients into OAuth discovery). Mode ``oauth2`` → the token
    subject's Principal, 401 (``Bearer …, resource_metadata="…"``) for a missing/invalid/expired
    token or wrong audience, 403 for a missing scope.
    """
    mode = auth.mode if auth is not None else NO_AUTH
    if mode == "none":
        return None
    if mode == "apikey":
        return _authenticate_key(headers, keys=keys, tenant=tenant, now=now)
    if mode == "oauth2":
        return _authenticate_oauth(auth or Auth(), headers, tenant=tenant, resource_url=resource_url,
                                   metadata_url=metadata_url, oauth=oauth)
    raise ValueError(f"auth.mode: {mode!r} is not one of {', '.join(MODES)}")


def auth_config_errors(auth: Any, where: str = "auth") -> list[str]:
    """Problems of a router's ``auth`` block, each ``field: reason`` (empty when it is usable).

    The SDK's rules (:func:`mcpgw_sdk.documents.auth_errors`): one rule set for saving a
    document and for serving it.

    >>> auth_config_errors({"mode": "oauth2"})
    ['auth.issuer: required for mode oauth2 (or give auth.jwksUri)']
    """
    return auth_errors(auth, where)


def metadata_path(prefix: str) -> str:
    """The path of a router's protected-resource metadata (RFC 9728), e.g. ``/.well-known/oauth-protected-resource/t/x``."""
    return "/.well-known/oauth-protected-resource/" + prefix.strip("/")


def protected_resource_metadata(auth: Auth | None, resource_url: str) -> dict[str, Any]:
    """The RFC 9728 document describing a router protected by OAuth 2.1."""
    auth = auth or Auth()
    scopes = _scopes(auth)
    meta: dict[str, Any] = {
        "resource": resource_url,
        "authorization_servers": [auth.issuer] if auth.issuer else [],
        "bearer_methods_supported": ["header"],
    }
    if scopes:
        meta["scopes_supported"] = list(scopes)
    return meta
