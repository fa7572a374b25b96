"""Management-API authentication: JWT access/refresh tokens, the signing secret, login rate limits.

Tokens are HS256 JWTs (PyJWT). The secret is the ``jwt_secret`` setting when set;
otherwise one is generated on first run and stored in the database (table
``_mcpgw_secrets``, created here through the store's peewee database), so every
worker and replica on that database shares it and tokens survive restarts.
There is never a built-in default secret.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any

import jwt

from mcpgw_sdk import settings
from mcpgw_sdk.errors import AuthError

log = logging.getLogger("mcpgw.api")

ACCESS_TTL = 15 * 60  #: seconds an access token lives
REFRESH_TTL = 7 * 24 * 3600  #: seconds a refresh token lives
ALGORITHM = "HS256"
SECRET_NAME = "jwt_secret"


def _stored_secret(store: Any) -> str | None:
    """Read or create the signing secret in the store's database; ``None`` when the store has none."""
    db = getattr(store, "db", None)
    if db is None or getattr(store, "read_only", False):
        return None
    import peewee

    class Secret(peewee.Model):
        name = peewee.CharField(max_length=64, primary_key=True)
        value = peewee.CharField(max_length=255)

        class Meta:
            database = db
            table_name = "_mcpgw_secrets"

    with db.connection_context():
        db.create_tables([Secret], safe=True)
        row = Secret.get_or_none(Secret.name == SECRET_NAME)
        if row is not None:
            return row.value
        try:
            with db.atomic():
                Secret.insert(name=SECRET_NAME, value=secrets.token_urlsafe(48)).execute()
        except peewee.IntegrityError:
            pass  # another process created it first: use theirs
        return Secret.get(Secret.name == SECRET_NAME).value


def load_secret(store: Any, explicit: str | None = None) -> str:
    """The signing secret: ``explicit``, else ``MCPGW_JWT_SECRET``, else the one stored in the database.

    A store without a database (the read-only YAML directory) gets a random
    per-process secret, logged as a warning: tokens then last one process.
    """
    secret = settings.get("jwt_secret", explicit or None)
    if secret:
        if len(secret) < 16:
            from mcpgw_sdk.errors import ConfigError

            raise ConfigError("MCPGW_JWT_SECRET: must be at least 16 characters")
        return secret
    stored = _stored_secret(store)
    if stored:
        return stored
    log.warning("no database to keep the JWT secret in: tokens are valid for this process only "
                "(set MCPGW_JWT_SECRET to share one)")
    return secrets.token_urlsafe(48)


class TokenService:
    """Issues and verifies the API's tokens.

    >>> tokens = TokenService("x" * 32)
    >>> tokens.verify(tokens.issue("alice")["access_token"])["sub"]
    'alice'
    """

    def __init__(self, secret: str, *, access_ttl: int = ACCESS_TTL, refresh_ttl: int = REFRESH_TTL):
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def _encode(self, user: str, kind: str, ttl: int) -> str:
        now = int(time.time())
        claims = {"sub": user, "typ": kind, "iat": now, "exp": now + ttl, "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue(self, user: str) -> dict[str, Any]:
        """A fresh access and refresh token pair for ``user``."""
        return {
            "access_token": self._encode(user, "access", self.access_ttl),
            "refresh_token": self._encode(user, "refresh", self.refresh_ttl),
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
        }

    def verify(self, token: str, *, kind: str = "access") -> dict[str, Any]:
        """The claims of a valid token of ``kind``, else AuthError (expired, forged, wrong kind)."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                options={"require": ["exp", "iat", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired") from None
        except jwt.PyJWTError:
            raise AuthError("the token is not valid") from None
        if claims.get("typ") != kind:
            raise AuthError(f"a {kind} token is required")
        return claims


class RateLimited(Exception):
    """Raised when too many failed logins came from one (address, username) pair; ``retry_after`` in seconds."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"too many failed logins; retry in {retry_after} s")


class LoginLimiter:
    """At most ``limit`` failed logins per (address, username) in ``window`` seconds (in memory, per process)."""

    MAX_TRACKED = 10_000

    def __init__(self, *, limit: int = 10, window: float = 60.0):
        self.limit = limit
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        hits = self._failures.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def check(self, address: str, username: str) -> None:
        """Raise :class:`RateLimited` when this pair is over its limit."""
        now = time.monotonic()
        with self._lock:
            hits = self._recent((address, username), now)
            if len(hits) >= self.limit:
                raise RateLimited(max(1, int(hits[0] + self.window - now + 0.999)))
            if not hits:
                self._failures.pop((address, username), None)

    def failed(self, address: str, username: str) -> None:
        """Count one failed login."""
        now = time.monotonic()
        with self._lock:
            self._recent((address, username), now).append(now)
            if len(self._failures) > self.MAX_TRACKED:
                # many names tried once: forget pairs whose failures have all aged out
                for key in [k for k, hits in self._failures.items() if not hits or hits[-1] <= now - self.window]:
                    del self._failures[key]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)
