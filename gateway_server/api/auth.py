"""Management-API authentication: JWT access/refresh tokens, the signing secret, login rate limits.

Tokens are HS256 JWTs (PyJWT). The secret is the ``jwt_secret`` setting when set;
otherwise one is generated on first run and stored in the database (the store's
key/value table), so every worker and replica on that database shares it and
tokens survive restarts.
There is never a built-in default secret. A password change voids the user's
earlier tokens (a per-user time kept in the same table). Logging out, and using a
refresh token (each is good for one refresh), puts the token's id on a deny-list in
the same table until the token would have expired anyway. Failed logins are counted
there too, so the rate limit holds across workers and replicas.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import deque
from typing import Any

import jwt

from mcpgw_sdk.errors import AuthError
from mcpgw_sdk.settings import resolve
from mcpgw_sdk.store import ValueStore

log = logging.getLogger("mcpgw.api")

ACCESS_TTL = 15 * 60  #: seconds an access token lives
REFRESH_TTL = 7 * 24 * 3600  #: seconds a refresh token lives
ALGORITHM = "HS256"
SECRET_NAME = "jwt_secret"
REVOKED = "revoked:"  #: key prefix of the token deny-list (value: the token's expiry, see :func:`stamp`)
LOGIN_FAILURES = "login:"  #: key prefix of the shared failed-login counters


def stamp(when: float) -> str:
    """A time as 12 zero-padded digits of epoch seconds: such values sort as the times do."""
    return f"{max(0, int(when)):012d}"


class ApiState:
    """The API's small state in the store's key/value table (``meta``): the signing secret and,
    per user, the time before which their tokens are void (set when a password changes or an
    account is disabled)."""

    def __init__(self, store: ValueStore):
        self._store = store

    @classmethod
    def of(cls, store: Any) -> ApiState | None:
        """The state of ``store``, or ``None`` for a store that cannot keep values (``yaml://``)."""
        if not isinstance(store, ValueStore):
            return None
        return cls(store)

    def get(self, name: str) -> str | None:
        """The value stored under ``name``, else ``None``."""
        return self._store.get_value(name)

    def setdefault(self, name: str, value: str) -> str:
        """Store ``value`` unless ``name`` exists; return what is stored (the first writer wins a race)."""
        return self._store.set_value(name, value, only_if_absent=True)

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing any previous one."""
        self._store.set_value(name, value)

    def update(self, name: str, change) -> str | None:
        """Replace the value under ``name`` by ``change(current)`` atomically (``None`` deletes it)."""
        return self._store.update_value(name, change)

    def sweep(self, prefix: str, now: float) -> None:
        """Forget the entries under ``prefix`` whose value (a :func:`stamp`) is before ``now``."""
        self._store.delete_values(prefix, below=stamp(now))


def load_secret(state: ApiState | None, explicit: str | None = None, *, setting: str = "jwt_secret",
                name: str = SECRET_NAME, warning: str = "no database to keep the JWT secret in: tokens are "
                                                          "valid for this process only",
                logger: logging.Logger | None = None) -> str:
    """The signing secret: ``explicit``, else ``MCPGW_JWT_SECRET``, else the one stored in the database.

    ``setting`` names the setting (and its ``MCPGW_`` variable), ``name`` the key/value entry, ``warning``
    what ``logger`` logs when there is no database. A store without a database (the read-only YAML directory)
    gets a random per-process secret, logged as a warning: tokens then last one process.
    """
    env = f"MCPGW_{setting.upper()}"
    secret = explicit or resolve().get(setting)
    if secret:
        if len(secret) < 16:
            from mcpgw_sdk.errors import ConfigError

            raise ConfigError(f"{env}: must be at least 16 characters")
        return secret
    if state is not None:
        return state.setdefault(name, secrets.token_urlsafe(48))
    (logger or log).warning("%s (set %s to share one)", warning, env)
    return secrets.token_urlsafe(48)


class TokenService:
    """Issues and verifies the API's tokens; with a state table, tokens can be voided per user.

    >>> tokens = TokenService("x" * 32)
    >>> tokens.verify(tokens.issue("alice")["access_token"])["sub"]
    'alice'
    """

    def __init__(self, secret: str, *, state: ApiState | None = None, access_ttl: int = ACCESS_TTL,
                 refresh_ttl: int = REFRESH_TTL):
        self._secret = secret
        self._state = state
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def revoke_user(self, user: str) -> None:
        """Void every token of ``user`` issued until now (after a password change or when disabled)."""
        if self._state is not None:
            self._state.set(f"epoch:{user}", repr(time.time()))

    def revoke(self, claims: dict[str, Any]) -> bool:
        """Put the token of ``claims`` on the deny-list until it expires; False when it already was there.

        Atomic across processes: of two concurrent revocations of one token exactly one returns True
        (which is what makes a refresh token good for one refresh only).
        """
        jti = claims.get("jti")
        if self._state is None or not isinstance(jti, str):
            return True
        first = []

        def add(current: str | None) -> str:
            first.append(current is None)
            return current or stamp(float(claims["exp"]) + 1)

        self._state.update(REVOKED + jti, add)
        if secrets.randbelow(16) == 0:  # entries outlive their tokens only until a later sweep
            self._state.sweep(REVOKED, time.time())
        return first[-1]

    def _revoked(self, claims: dict[str, Any]) -> bool:
        jti = claims.get("jti")
        return self._state is not None and isinstance(jti, str) and self._state.get(REVOKED + jti) is not None

    def _void_before(self, user: str) -> float:
        if self._state is None:
            return 0.0
        value = self._state.get(f"epoch:{user}")
        return float(value) if value else 0.0

    def _encode(self, user: str, kind: str, ttl: int) -> str:
        now = time.time()
        # iat has one-second resolution; ts orders a token against a revocation in the same second
        claims = {"sub": user, "typ": kind, "iat": int(now), "exp": int(now) + ttl, "ts": now,
                  "jti": secrets.token_hex(8)}
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
        if float(claims.get("ts", claims["iat"])) <= self._void_before(claims["sub"]):
            raise AuthError("the token was revoked (the password changed or the account was disabled)")
        if self._revoked(claims):
            raise AuthError("the token was revoked (logged out, or a refresh token already used)")
        return claims


class RateLimited(Exception):
    """Raised when too many failed logins came from one (address, username) pair; ``retry_after`` in seconds."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"too many failed logins; retry in {retry_after} s")


class SharedLoginLimiter:
    """At most ``limit`` failed logins per (address, username) in ``window`` seconds, counted in the store.

    Every worker and replica on one database shares the counters (the key/value table; the pair is
    hashed, so neither addresses nor names are stored). Entries expire with their window and are swept
    now and then, so names tried once do not pile up.
    """

    def __init__(self, state: ApiState, *, limit: int = 10, window: float = 60.0):
        self.limit = limit
        self.window = window
        self._state = state

    @staticmethod
    def _key(address: str, username: str) -> str:
        digest = hashlib.sha256(f"{address}\0{username}".encode("utf-8", "replace")).hexdigest()
        return LOGIN_FAILURES + digest[:40]

    def _recent(self, value: str | None, now: float) -> list[float]:
        if not value:
            return []
        _, _, times = value.partition("|")
        try:
            hits = [float(t) for t in times.split(",") if t]
        except ValueError:  # not ours: start over
            return []
        return [t for t in hits if t > now - self.window]

    def check(self, address: str, username: str) -> None:
        """Raise :class:`RateLimited` when this pair is over its limit."""
        now = time.time()
        hits = self._recent(self._state.get(self._key(address, username)), now)
        if len(hits) >= self.limit:
            raise RateLimited(max(1, int(hits[0] + self.window - now + 0.999)))

    def failed(self, address: str, username: str) -> None:
        """Count one failed login (atomically, whichever process sees it)."""
        now = time.time()

        def add(current: str | None) -> str:
            hits = (self._recent(current, now) + [now])[-self.limit:]
            return stamp(hits[-1] + self.window) + "|" + ",".join(f"{t:.3f}" for t in hits)

        self._state.update(self._key(address, username), add)
        if secrets.randbelow(16) == 0:
            self._state.sweep(LOGIN_FAILURES, now)


class LoginLimiter:
    """At most ``limit`` failed logins per (address, username) in ``window`` seconds (in memory, per process).

    Used only when there is no database to share counters in (:class:`SharedLoginLimiter` otherwise).
    """

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
